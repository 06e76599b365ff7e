"""crmbot transports and runtime: Slack app, mail in/out, scheduler, digests, CLI."""
