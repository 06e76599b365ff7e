"""The long-running process's parts: components, and the runtime that starts and stops them.

Each transport or job runner (the Slack app, the mail poller, the scheduler) is a component
with ``start()`` (returns once its threads are running) and ``stop()``. A factory returns the
component, or a ``Disabled`` note saying why it is off (e.g. no Slack token), so start-up
states plainly what runs.

This module sits below every component: they import it, it imports none of them. Which
components a ``crmbot run`` process has is wired up by the command (``bot.cli.admin``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from crm.config import Settings
from crm.db import Database

logger = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Disabled:
    name: str
    reason: str


Factory = Callable[[Settings, Database], "Component | Disabled"]


class Runtime:
    """Starts the components in order, stops them in reverse, and waits in between."""

    def __init__(self, settings: Settings, db: Database, factories: list[Factory]) -> None:
        self.settings = settings
        self.db = db
        self.factories = factories
        self.components: list[Component] = []
        self.disabled: list[Disabled] = []
        self._stopped = threading.Event()

    def start(self) -> None:
        self.db.upgrade()
        for factory in self.factories:
            made = factory(self.settings, self.db)
            if isinstance(made, Disabled):
                self.disabled.append(made)
                logger.warning("%s is off: %s", made.name, made.reason)
                continue
            made.start()
            self.components.append(made)
            logger.info("%s started", made.name)

    def stop(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:  # one component failing to stop must not keep the others running
                logger.exception("stopping %s failed", component.name)
        self.components.clear()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()

    def stop_on_signal(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            logger.info("signal %s: stopping", signum)
            threading.Thread(target=self.stop, daemon=True).start()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
