"""Slack listeners, one module per kind."""
