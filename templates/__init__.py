"""Jinja2 templates for digests and messages (installed as the package bot.templates)."""
