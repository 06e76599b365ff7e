"""Parser processes: the same answers as parsing here, in order, and a dead one loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bot.mail.ingest import MailProcessor
from bot.mail.parse import parse_batch
from bot.mail.parser_pool import ParserPool, ParserProcessError
from crm.config import Settings
from crm.services.actor import Actor


def test_batches_come_back_parsed_and_in_order(make_mail):
    raws = [make_mail(i, sender=f"P{i} <p{i}@firm{i % 3}.example>") for i in range(30)]
    pool = ParserPool(2)
    try:
        futures = [pool.submit(raws[i : i + 4], ("ourco.com",), 10_000) for i in range(0, 30, 4)]
        got = [p for f in futures for p in f.result(timeout=60)]
    finally:
        pool.shutdown()
    assert got == parse_batch(raws, ("ourco.com",), 10_000)
    assert [p.from_.address for p in got] == [f"p{i}@firm{i % 3}.example" for i in range(30)]
    assert all(p.popen.poll() is not None for p in pool.processes)  # shut down, no orphans


def test_a_parser_process_loads_no_part_of_the_crm():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot.mail.parser_pool"],
        input=b"", capture_output=True, timeout=60, check=True,
    )
    imported = done.stderr.decode()
    assert "bot.mail.parse" in imported
    for heavy in ("crm.", "sqlalchemy", "sqlmodel", "imapclient", "bot.cli"):
        assert heavy not in imported


def test_a_killed_parser_process_fails_its_batches_and_the_mail_is_parsed_here(
    make_mail, tmp_path
):
    pool = ParserPool(1)
    os.kill(pool.processes[0].popen.pid, signal.SIGKILL)
    pool.processes[0].popen.wait()
    with pytest.raises(ParserProcessError):
        pool.submit([make_mail(1)], (), 1000).result(timeout=60)
    pool.shutdown()

    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path / 'x.db'}", mail_parse_workers=2
    )
    processor = MailProcessor(settings, None, source="test", actor=Actor.system("test"))  # type: ignore[arg-type]
    processor.warm_up()
    assert processor._pool is not None
    for process in processor._pool.processes:
        os.kill(process.popen.pid, signal.SIGKILL)
    mails = processor.parse([make_mail(i) for i in range(40)])
    assert [m.message_id for m in mails] == [f"msg{i}@acme.example" for i in range(40)]
    assert all(m.raw for m in mails) and processor._pool is None  # parsed here, pool given up
    processor.close()
