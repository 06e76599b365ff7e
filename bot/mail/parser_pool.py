"""Parser processes for large syncs and imports: raw messages in, ``ParsedEmail`` out.

Each one is a plain ``python -m bot.mail.parser_pool`` process that imports the parser and
nothing else of ours: it is ready in a fraction of a second, where a process of the standard
library's pools first imports the program that started it (the whole command line, the CRM,
the database layer: seconds, paid by every process of every run). It is started with
``subprocess`` (nothing that has threads is forked), and gets its batches pickled over its
standard input and sends the results back over its standard output, each framed by its length.
A process answers its batches in the order they came.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from queue import SimpleQueue
from typing import IO, Any

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!Q")


def _write_frame(stream: IO[bytes], payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    """The next payload, or None at the end of the stream."""
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


class ParserProcessError(RuntimeError):
    """A parser process ended or failed; the batch must be parsed another way."""


class _Process:
    """One parser process, with a thread that feeds it and one that reads its answers, so that
    handing over a batch never waits for the process."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bot.mail.parser_pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.waiting: deque[Future[Any]] = deque()
        self.lock = threading.Lock()
        self.outbox: SimpleQueue[Any] = SimpleQueue()
        self.dead = False
        threading.Thread(target=self._feed, name="mail-parser-feed", daemon=True).start()
        threading.Thread(target=self._read, name="mail-parser-read", daemon=True).start()

    def submit(self, request: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            if self.dead:
                raise ParserProcessError("the parser process has ended")
            self.waiting.append(future)
        self.outbox.put(request)
        return future

    @property
    def load(self) -> int:
        return len(self.waiting)

    def _feed(self) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        try:
            while (request := self.outbox.get()) is not None:
                _write_frame(stdin, request)
        except (OSError, ValueError):
            logger.warning("a parser process stopped taking work", exc_info=True)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read(self) -> None:
        stdout = self.popen.stdout
        assert stdout is not None
        try:
            while (answer := _read_frame(stdout)) is not None:
                with self.lock:
                    future = self.waiting.popleft()
                ok, value = answer
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(ParserProcessError(value))
        except Exception:
            logger.warning("lost a parser process's answer", exc_info=True)
        with self.lock:
            self.dead = True
            waiting, self.waiting = list(self.waiting), deque()
        for future in waiting:
            future.set_exception(ParserProcessError("the parser process ended"))

    def close(self) -> None:
        self.outbox.put(None)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class ParserPool:
    """``processes`` parser processes; a batch goes to the one with the least work waiting."""

    def __init__(self, processes: int) -> None:
        self.processes = [_Process() for _ in range(processes)]

    def submit(
        self, raws: Sequence[bytes], internal_domains: Sequence[str], max_body_chars: int
    ) -> Future[Any]:
        process = min(self.processes, key=lambda p: (p.dead, p.load))
        return process.submit((list(raws), tuple(internal_domains), max_body_chars))

    def shutdown(self) -> None:
        for process in self.processes:
            process.close()


def _serve() -> None:
    from bot.mail.parse import parse_batch

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not break the frames
    while (request := _read_frame(requests)) is not None:
        raws, internal_domains, max_body_chars = request
        try:
            answer: tuple[bool, Any] = (True, parse_batch(raws, internal_domains, max_body_chars))
        except Exception as exc:  # parse_email never raises; this is the last line of defence
            answer = (False, f"{type(exc).__name__}: {exc}")
        _write_frame(answers, answer)


if __name__ == "__main__":
    _serve()
