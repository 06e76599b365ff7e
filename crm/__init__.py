"""crmbot's domain: settings, store, services and analytics.

Nothing in this package knows about Slack or IMAP; transports live in ``bot``.
"""

__version__ = "0.1.0"
