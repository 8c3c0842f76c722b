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

from app.core.config import Settings
from app.email import smtp
from app.email.devmailbox import free_port
from app.email.smtp import send_bytes

REFUSED = "nobody@example.org"


@dataclass
class Server:
    """What the server saw: each transaction's MAIL options, recipients and content."""

    port: int
    seen: list[tuple[list[str], list[str], bytes]] = field(default_factory=list)
    refuse_with: str = "550 5.1.1 No such mailbox"  # the reply to RCPT for REFUSED
    senders: list[str] = field(default_factory=list)  # each transaction's MAIL FROM

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return self.refuse_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "553 5.7.1 Sender refused"
        envelope.mail_from, envelope.mail_options = address, list(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.seen.append((list(envelope.mail_options), list(envelope.rcpt_tos), envelope.content))
        self.senders.append(envelope.mail_from)
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
    # A line of a lone dot would end the data early unless it is doubled; dots anywhere else
    # in a line are left alone.
    b".Subject: a dot first\n\n.\n..two\nmid.dle.\n.\n",
    b"Subject: ends in a dot\n\n.",
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


@pytest.mark.parametrize(
    ("reply", "bounce"), [("550 5.1.1 No such mailbox", True), ("552 full", True)]
)
def test_a_refused_recipient_is_reported_as_sendmail_reports_it(
    server: Server, reply: str, bounce: bool
) -> None:
    """A refusal at RCPT is the error sendmail raises for it (one recipient refused), so the
    worker suppresses that address as before; the connection then sends the next message."""
    server.refuse_with = reply

    async def refused_then_sent() -> BaseException:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await send_bytes(
                    session, sender="chorus@example.org", recipient=REFUSED, data=MESSAGES[0]
                )
            await send_bytes(
                session, sender="chorus@example.org", recipient="ada@example.org", data=MESSAGES[1]
            )
            return refused.value

    error = asyncio.run(refused_then_sent())
    assert isinstance(error, aiosmtplib.SMTPRecipientsRefused)
    assert [r.code for r in error.recipients] == [int(reply[:3])]
    assert smtp.is_permanent(error) and smtp.is_bounce(error) == bounce
    [(_, recipients, content)] = server.seen
    assert recipients == ["ada@example.org"] and b"no final line feed" in content


@pytest.mark.parametrize("reply", ["554 5.6.0 Message refused", "451 4.3.0 Try again later"])
def test_refused_data_is_reported_as_sendmail_reports_it(server: Server, reply: str) -> None:
    """A refusal after the data is the error sendmail raises, permanent or not by its code,
    and the connection then sends the next message."""
    refuse = [True]

    async def refuse_once(*args: Any) -> str:
        if refuse.pop() if refuse else False:
            return reply
        return await Server.handle_DATA(server, *args)

    server.handle_DATA = refuse_once  # type: ignore[method-assign,assignment]

    async def refused_then_sent() -> BaseException:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await send_bytes(
                    session, sender="chorus@example.org", recipient="ada@example.org", data=b"x\n"
                )
            await send_bytes(
                session, sender="chorus@example.org", recipient="ada@example.org", data=MESSAGES[1]
            )
            return refused.value

    error = asyncio.run(refused_then_sent())
    assert error.code == int(reply[:3])  # type: ignore[attr-defined]
    assert smtp.is_permanent(error) == reply.startswith("5")
    [(_, _, content)] = server.seen
    assert b"no final line feed" in content


def test_a_new_connection_says_ehlo_first_and_gives_the_size(server: Server) -> None:
    """The worker's connections (fastapi-mail's, without STARTTLS or login: nothing has said
    EHLO yet) still give the server the message's SIZE with the first message."""
    settings = Settings(SECRET_KEY="s" * 40)
    connections = smtp.SmtpConnections(
        smtp.mail_config(settings, server="127.0.0.1", port=server.port)
    )

    async def first() -> None:
        connection, reused = await connections.connect()
        assert not reused and connection.session.is_ehlo_or_helo_needed
        await send_bytes(
            connection.session,
            sender="chorus@example.org",
            recipient="ada@example.org",
            data=MESSAGES[1],
        )
        await connections.close(connection)

    asyncio.run(first())
    [(options, _, _)] = server.seen
    assert options == [f"SIZE={len(normalize_message_line_endings(MESSAGES[1]))}"]


ADDRESSES = [  # (sender, recipient, whether the recipient is written without aiosmtplib's parse)
    ("chorus@example.org", "ada@example.org", True),
    ("petitions+bounces@mail.example.org", "o'brien.x_y%z#1@lab-7.example.org", True),
    ("chorus@example.org", "Ada Lovelace <ada@example.org>", False),
    ("Chorus <chorus@example.org>", '"quoted local"@example.org', False),
]


@pytest.mark.parametrize(("sender", "recipient", "plain"), ADDRESSES)
def test_the_envelope_is_what_sendmail_would_have_sent(
    server: Server, sender: str, recipient: str, plain: bool
) -> None:
    """MAIL FROM and RCPT TO of a plain address are written without aiosmtplib's parse of it;
    any other address goes through aiosmtplib's own; the server sees the same either way."""
    assert bool(smtp.PLAIN_ADDRESS.fullmatch(recipient)) == plain

    async def both() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            await session.sendmail(sender, [recipient], MESSAGES[0])
            await send_bytes(session, sender=sender, recipient=recipient, data=MESSAGES[0])

    asyncio.run(both())
    assert server.senders[0] == server.senders[1]
    assert server.seen[0] == server.seen[1]


def test_a_refused_sender_is_reported_as_sendmail_reports_it(server: Server) -> None:
    async def refused() -> tuple[BaseException, BaseException]:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as session:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as by_sendmail:
                await session.sendmail(REFUSED, ["ada@example.org"], MESSAGES[0])
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as by_us:
                await send_bytes(
                    session, sender=REFUSED, recipient="ada@example.org", data=MESSAGES[0]
                )
            await send_bytes(  # the connection serves the next message
                session, sender="chorus@example.org", recipient="ada@example.org", data=MESSAGES[1]
            )
            return by_sendmail.value, by_us.value

    by_sendmail, by_us = asyncio.run(refused())
    assert (by_us.code, by_us.message, by_us.sender) == (  # type: ignore[attr-defined]
        by_sendmail.code,  # type: ignore[attr-defined]
        by_sendmail.message,  # type: ignore[attr-defined]
        by_sendmail.sender,  # type: ignore[attr-defined]
    )
    assert len(server.seen) == 1


def test_a_server_that_stops_answering_times_out_the_message_and_loses_the_connection(
    server: Server,
) -> None:
    """The connection's timeout bounds the whole exchange (one timer per message, not one per
    reply): a server that accepts the envelope and then never answers the data gets the
    connection closed (a late reply would be taken for the next command's) and the error
    aiosmtplib gives for a reply that did not come."""
    hang = asyncio.Event()

    async def never_answer(*args: Any) -> str:
        await hang.wait()
        return "250 OK"

    server.handle_DATA = never_answer  # type: ignore[method-assign,assignment]

    async def stalled() -> tuple[BaseException, float, bool]:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=0.5) as session:
            started = asyncio.get_running_loop().time()
            with pytest.raises(aiosmtplib.SMTPTimeoutError) as timed_out:
                await send_bytes(
                    session,
                    sender="chorus@example.org",
                    recipient="ada@example.org",
                    data=MESSAGES[0],
                )
            took = asyncio.get_running_loop().time() - started
            return timed_out.value, took, session.is_connected

    error, took, connected = asyncio.run(stalled())
    assert isinstance(error, aiosmtplib.SMTPReadTimeoutError)
    assert 0.5 <= took < 2
    assert not connected
