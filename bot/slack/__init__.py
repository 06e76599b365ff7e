"""Slack: the Bolt app (``app``), its HTTP and Socket Mode runtime (``runtime``), replies over
kept-alive connections (``respond``), the ids buttons and forms carry (``ids``), and Block Kit
rendering by what it shows (``blocks``). The listeners themselves are in ``bot.handlers``."""
