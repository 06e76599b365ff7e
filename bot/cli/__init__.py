"""The ``crmbot`` command line, one module per group of commands.

Only ``main`` imports the command modules, each of which adds itself with ``register(app)``.

- ``main``: the root app, its options (``--database-url``, ``--as``, ``-v``) and ``main()``.
- ``common``: what the commands share: consoles, ``--json``, the state, output helpers.
- ``admin``: ``crmbot version``, ``crmbot db upgrade|current``, ``crmbot demo``, ``crmbot run``.
- ``interactions``: ``crmbot log`` and ``crmbot timeline``.
- ``customers``: ``crmbot customer add|find|show|update|merge``.
- ``deals``: ``crmbot deal add|move|won|lost|list``.
- ``followups``: ``crmbot followup add|list|done|snooze``.
- ``imports``: ``crmbot import customers|deals|transactions``.
- ``users``: ``crmbot user add|role|deactivate|activate|list``.
- ``digests``: ``crmbot digest preview|send|subscribe|unsubscribe|history``.
- ``mail``: ``crmbot mail inspect|poll|status|quarantine`` and ``crmbot ingest``.
- ``slack``: ``crmbot slack manifest``.
- ``analytics``: ``crmbot analytics refresh|evaluate``.
"""
