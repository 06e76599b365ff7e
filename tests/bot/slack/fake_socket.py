"""A minimal local websocket server standing in for Slack's Socket Mode endpoint.

Just enough of RFC 6455 for slack_sdk's built-in client: the upgrade handshake, text frames
both ways (client frames are masked), ping/pong and close. It says "hello" like Slack does,
then sends whatever envelopes a test queues and records what the client sends back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import socket
import struct
import threading
import time
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeSocketMode:
    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()
        return f"ws://{host}:{port}/link"

    def start(self) -> FakeSocketMode:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def send(self, envelope: dict[str, Any]) -> None:
        self._outbox.put(envelope)

    def next_received(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.received.get(timeout=timeout)

    # ------------------------------------------------------------ protocol

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        request = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in request and time.monotonic() < deadline:
            try:
                request += conn.recv(4096)
            except TimeoutError:
                continue
        headers = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest()
        ).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self._send_text(
            conn, {"type": "hello", "num_connections": 1, "debug_info": {"host": "local"}}
        )
        self.connected.set()
        buffer = b""
        while not self._stop.is_set():
            try:
                while True:
                    self._send_text(conn, self._outbox.get_nowait())
            except queue.Empty:
                pass
            try:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            except TimeoutError:
                continue
            except OSError:
                return
            while (frame := self._parse(buffer)) is not None:
                opcode, payload, used = frame
                buffer = buffer[used:]
                if opcode == 0x1:
                    self.received.put(json.loads(payload.decode()))
                elif opcode == 0x9:
                    self._send_frame(conn, 0xA, payload)
                elif opcode == 0x8:
                    self._send_frame(conn, 0x8, payload[:2])
                    conn.close()
                    return

    @staticmethod
    def _parse(data: bytes) -> tuple[int, bytes, int] | None:
        if len(data) < 2:
            return None
        opcode = data[0] & 0x0F
        masked = data[1] & 0x80
        length = data[1] & 0x7F
        pos = 2
        if length == 126:
            if len(data) < 4:
                return None
            length = struct.unpack(">H", data[2:4])[0]
            pos = 4
        elif length == 127:
            if len(data) < 10:
                return None
            length = struct.unpack(">Q", data[2:10])[0]
            pos = 10
        mask = b""
        if masked:
            if len(data) < pos + 4:
                return None
            mask = data[pos : pos + 4]
            pos += 4
        if len(data) < pos + length:
            return None
        payload = data[pos : pos + length]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload, pos + length

    def _send_text(self, conn: socket.socket, message: dict[str, Any]) -> None:
        self._send_frame(conn, 0x1, json.dumps(message).encode())

    @staticmethod
    def _send_frame(conn: socket.socket, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack(">H", n)
        else:
            header += bytes([127]) + struct.pack(">Q", n)
        conn.sendall(header + payload)
