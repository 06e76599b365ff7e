"""``python -m bot.cli``: the same as the ``crmbot`` command."""

from bot.cli.main import main

main()
