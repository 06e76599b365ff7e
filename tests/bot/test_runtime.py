"""crmbot run: components start in order, stop in reverse, and switched-off parts say why."""

from __future__ import annotations

from bot.runtime import Disabled, Runtime
from crm.config import Settings


class Recorder:
    def __init__(self, name: str, log: list[str], fail_stop: bool = False) -> None:
        self.name, self.log, self.fail_stop = name, log, fail_stop

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("boom")


def test_runtime_lifecycle(db):
    log: list[str] = []
    settings = Settings(_env_file=None, database_url=db.url)  # type: ignore[call-arg]
    runtime = Runtime(settings, db, factories=[
        lambda s, d: Recorder("a", log, fail_stop=True),
        lambda s, d: Disabled("slack", "SLACK_BOT_TOKEN is not set"),
        lambda s, d: Recorder("b", log),
    ])
    runtime.start()
    assert [c.name for c in runtime.components] == ["a", "b"]
    assert runtime.disabled == [Disabled("slack", "SLACK_BOT_TOKEN is not set")]
    runtime.stop()  # a failing stop does not keep the others running
    assert log == ["start a", "start b", "stop b", "stop a"]
    runtime.wait()  # returns at once once stopped
