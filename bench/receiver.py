"""The benchmark's webhook receiver: an endpoint that answers 204 and keeps what arrives.

It stands for an organisation's CRM or automation tool, which in production runs elsewhere;
here it shares the two cores with what it measures, so, like the SMTP sink (bench/sink.py), it
is a bare asyncio protocol that does as little as HTTP/1.1 allows: it reads each request's
headers and Content-Length body, answers `204 No Content` on the same connection, and keeps
the Standard Webhooks headers and the body of each delivery for the bench to check later
(signatures, none twice, none from a phase without an endpoint), away from the timed phases.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from app.email.devmailbox import free_port

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Delivery:
    """One POST as it arrived."""

    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """An HTTP server on 127.0.0.1 that accepts every POST; `deliveries` in arrival order."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chorus"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            self._loop.create_server(lambda: _Session(self), "127.0.0.1", self.port), self._loop
        ).result(timeout=10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class _Session(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length", "0")
            if not length.isdigit() or "chunked" in headers.get("transfer-encoding", ""):
                self.transport.write(BAD_REQUEST)  # (Chorus's sender always sends a length)
                self.transport.close()
                return
            if len(self.buffer) < end + 4 + int(length):
                return  # the rest of the body is on its way
            body = bytes(self.buffer[end + 4 : end + 4 + int(length)])
            del self.buffer[: end + 4 + int(length)]
            self.receiver.deliveries.append(Delivery(headers, body, time.monotonic()))
            self.transport.write(NO_CONTENT)
