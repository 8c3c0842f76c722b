"""The benchmark's SMTP sink: the mail relay, counting what arrives, by Message-ID."""

from __future__ import annotations

import asyncio
import re
import threading
import time

from app.email.devmailbox import free_port

try:
    import uvloop
except ImportError:  # pragma: no cover (not on Windows)
    uvloop = None  # type: ignore[assignment]

OUTBOX_ID = re.compile(rb"^Message-ID:[ \t]*<outbox-(\d+)@", re.MULTILINE | re.IGNORECASE)


class Sink:
    """An SMTP server that accepts every message and counts what arrives, by Message-ID.

    It stands for the mail relay, which in production runs on another machine; here it
    shares the two cores with what it measures, so it does as little as the protocol allows
    (a bare asyncio protocol: aiosmtpd spent about as much CPU per message as a worker).
    It speaks enough SMTP for any client: EHLO/HELO, MAIL, RCPT, DATA (with the client's
    dot-stuffing left in place: only the headers are read), RSET, NOOP, QUIT.
    """

    def __init__(self) -> None:
        self.count = 0
        # When each outbox message first arrived (time.monotonic()), and how often, by the
        # stable Message-ID the worker gives it (<outbox-ID@domain>): one sent twice shows.
        self.arrived: dict[int, float] = {}
        self.times: dict[int, int] = {}
        self.port = free_port()
        # uvloop, as Chorus's processes run (app/core/process.py): the sink shares the cores
        # with what it measures, and asyncio's own loop cost it 72-94 us per message against
        # uvloop's 51-64 (one worker draining to it, two runs each).
        self._loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def received(self, content: bytes) -> None:
        self.count += 1  # (only the sink's own thread writes)
        match = OUTBOX_ID.search(content.split(b"\r\n\r\n", 1)[0])
        if match:
            outbox_id = int(match.group(1))
            self.arrived.setdefault(outbox_id, time.monotonic())
            self.times[outbox_id] = self.times.get(outbox_id, 0) + 1

    def delivered_twice(self) -> int:
        return sum(1 for n in list(self.times.values()) if n > 1)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            self._loop.create_server(lambda: _SmtpSession(self), "127.0.0.1", self.port),
            self._loop,
        ).result(timeout=10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class _SmtpSession(asyncio.Protocol):
    EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 104857600\r\n"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # how much of a message's data has been searched for its end
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 sink ESMTP\r\n")  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                if self.buffer.startswith(b".\r\n"):
                    end, content = 0, b""
                else:
                    end = self.buffer.find(b"\r\n.\r\n", self.scanned)
                    if end < 0:
                        self.scanned = max(0, len(self.buffer) - 4)  # the end may straddle
                        break
                    content, end = bytes(self.buffer[: end + 2]), end + 2
                del self.buffer[: end + 3]
                self.in_data, self.scanned = False, 0
                self.sink.received(content)
                replies.append(b"250 OK\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            if verb == b"EHLO":
                replies.append(self.EHLO)
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"".join(replies) + b"221 Bye\r\n")
                self.transport.close()
                return
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                replies.append(b"250 OK\r\n")
            else:
                replies.append(b"502 Command not implemented\r\n")
        if replies:
            self.transport.write(b"".join(replies))
