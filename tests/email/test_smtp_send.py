"""The worker sends a message's bytes with MAIL, RCPT and DATA itself (app/email/smtp.py,
send_bytes) rather than through aiosmtplib's sendmail, which parses the addresses and
line-ends the message a second time: a real SMTP server (aiosmtpd) must see exactly what
sendmail would have sent it, SIZE included, and a refused recipient must leave the connection
ready for the next message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtplib.protocol import normalize_message_line_endings

from app.email.devmailbox import free_port
from app.email.smtp import send_bytes

REFUSED = "nobody@example.org"


@dataclass
class Server:
    """What the server saw: each transaction's MAIL options, recipients and content."""

    port: int
    seen: list[tuple[list[str], list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.seen.append((list(envelope.mail_options), list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server(port=free_port())
    controller = Controller(found, hostname="127.0.0.1", port=found.port)
    controller.start()
    yield found
    controller.stop()


MESSAGES = [
    b"Subject: a\nMessage-ID: <outbox-1@example.org>\n\nbody\n.starts with a dot\nlast\n",
    b"Subject: no final line feed\n\nbody",
    b"Subject: one\n\n" + b"QUJD" * 19 + b"\n" + b"=" * 10,
    b"Subject: written by someone else\r\n\r\nCRLF already\r\nand a bare\nline feed\n",
]


@pytest.mark.parametrize("data", MESSAGES)
def test_the_server_sees_what_sendmail_would_have_sent(server: Server, data: bytes) -> None:
    async def both() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            await session.sendmail("chorus@example.org", ["ada@example.org"], data)
            await send_bytes(
                session, sender="chorus@example.org", recipient="ada@example.org", data=data
            )

    asyncio.run(both())
    by_sendmail, by_us = server.seen
    assert by_us == by_sendmail
    assert by_us[0] == [f"SIZE={len(normalize_message_line_endings(data))}"]


def test_a_refused_recipient_raises_and_the_connection_sends_the_next(server: Server) -> None:
    async def refused_then_sent() -> int:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
                await send_bytes(
                    session, sender="chorus@example.org", recipient=REFUSED, data=MESSAGES[0]
                )
            await send_bytes(
                session, sender="chorus@example.org", recipient="ada@example.org", data=MESSAGES[1]
            )
            return refused.value.code

    assert asyncio.run(refused_then_sent()) == 550
    [(_, recipients, content)] = server.seen
    assert recipients == ["ada@example.org"] and b"no final line feed" in content
