"""Talking to the SMTP server: fastapi-mail's connection settings, connections kept open
between batches, sending one message, and reading the server's refusals."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPStatus
from fastapi_mail import ConnectionConfig
from fastapi_mail.connection import Connection

from app.core.config import Settings
from app.email import mime

# A connection left open longer than this is closed rather than reused (servers drop idle
# clients, and a stale connection would fail a lane).
IDLE_REUSE_SECONDS = 5.0


def mail_config(settings: Settings, *, server: str, port: int) -> ConnectionConfig:
    """fastapi-mail's settings for the SMTP server at `server`:`port`, from ours."""
    return ConnectionConfig(
        MAIL_SERVER=server,
        MAIL_PORT=port,
        MAIL_FROM=settings.MAIL_FROM,
        MAIL_FROM_NAME=settings.MAIL_FROM_NAME,
        MAIL_USERNAME=settings.MAIL_USERNAME,
        MAIL_PASSWORD=settings.MAIL_PASSWORD,
        MAIL_STARTTLS=settings.MAIL_STARTTLS,
        MAIL_SSL_TLS=settings.MAIL_SSL_TLS,
        USE_CREDENTIALS=bool(settings.MAIL_USERNAME),
        TIMEOUT=settings.MAIL_TIMEOUT,
    )


def is_permanent(error: BaseException) -> bool:
    """An SMTP 5xx reply for this message: retrying will not help (a hard bounce)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 500 <= error.code < 600
    return False


def is_bounce(error: BaseException) -> bool:
    """A permanent refusal that concerns the recipient (a hard bounce): not one about our sender
    address, nor 552 (the message is too big: that says nothing about the mailbox)."""
    if isinstance(error, aiosmtplib.SMTPSenderRefused):
        return False
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code == 552:
        return False
    return is_permanent(error)


class SmtpConnections:
    """A worker's SMTP connections: each lane takes one, and gives it back for the next
    batch's lanes when it is still sound."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        # Connections left open by lanes, with when: reused by the next batch's lanes.
        self._idle: list[tuple[Connection, float]] = []

    async def connect(self) -> tuple[Connection, bool]:
        """An SMTP connection: one left open by a previous lane if it is recent, else a new
        one. -> (connection, reused)"""
        while self._idle:
            connection, since = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_SECONDS and connection.session.is_connected:
                return connection, True
            await self.close(connection)
        connection = Connection(self.config)
        await connection.__aenter__()
        return connection, False

    def keep(self, connection: Connection) -> None:
        """Keep a sound connection open for the next lane."""
        self._idle.append((connection, time.monotonic()))

    @staticmethod
    async def close(connection: Connection) -> None:
        """Say goodbye (QUIT), or just hang up when the server is away."""
        try:
            await connection.session.quit()
        except (aiosmtplib.SMTPException, OSError):
            connection.session.close()

    async def close_idle(self) -> None:
        """Close the connections kept open (when the queue is empty, and on stop)."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await self.close(connection)


async def send(
    connection: Connection, *, sender: str, recipient: str, message: bytes | Any
) -> None:
    """Send one message over `connection`: its bytes, or a MIME message (mime.MimeBuilder.build
    gives either); aiosmtplib's errors tell what the server said."""
    if isinstance(message, bytes):  # (written for an ASCII address: mime._direct_shape)
        await send_bytes(connection.session, sender=sender, recipient=recipient, data=message)
    elif recipient.isascii():
        data = mime.flatten(message)  # before a word to the server: it may refuse
        await send_bytes(connection.session, sender=sender, recipient=recipient, data=data)
    else:  # needs SMTPUTF8: let aiosmtplib negotiate it
        await connection.session.send_message(message, recipients=[recipient])


async def send_bytes(session: aiosmtplib.SMTP, *, sender: str, recipient: str, data: bytes) -> None:
    """One message's envelope and bytes, as aiosmtplib's `sendmail` sends them (MAIL with the
    SIZE the server will count, RCPT, DATA; RSET after a refusal, so that the connection
    serves the next message), without what sendmail does again for each message: it parses
    both addresses a second time and line-ends the whole message a second time to count its
    size (a twentieth of a mail worker's CPU per confirmation e-mail). Ours are written with
    bare line feeds, which the server counts as CRLF: their size is counted directly.

    The connection's timeout bounds the whole exchange, not each of its four replies: aiosmtplib
    waits for each with asyncio.wait_for, a timer and a future of its own per reply. A server
    that has not answered in time gets the connection closed, as aiosmtplib closes it (a
    reply that comes late would be taken for the next command's), and the same error."""
    if b"\r" in data:  # not written by us: let aiosmtplib count it
        await session.sendmail(sender, [recipient], data)
        return
    try:
        async with asyncio.timeout(session.timeout):
            await _exchange(session, sender=sender, recipient=recipient, data=data)
    except TimeoutError as exc:
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            raise  # (connecting, say: aiosmtplib's own, the connection closed)
        session.close()
        raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc


async def _exchange(session: aiosmtplib.SMTP, *, sender: str, recipient: str, data: bytes) -> None:
    """send_bytes's commands, each waiting for its reply without a timeout of its own."""
    if session.is_ehlo_or_helo_needed:  # (a new connection without login or STARTTLS)
        try:
            await session.ehlo(timeout=None)
        except aiosmtplib.SMTPHeloError:
            await session.helo(timeout=None)
    options = []
    if session.supports_extension("size"):
        # Each line feed becomes CRLF, and a last line without one gets it.
        size = len(data) + data.count(b"\n") + (0 if data.endswith(b"\n") else 2)
        options.append(f"SIZE={size}")
    try:
        await _mail(session, sender, options)
        try:
            await _rcpt(session, recipient)
        except aiosmtplib.SMTPRecipientRefused as refused:
            # As sendmail reports it: is_bounce tells a refused mailbox by this type.
            raise aiosmtplib.SMTPRecipientsRefused([refused]) from None
        await _data(session, data)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        try:
            await session.rset(timeout=None)
        except (ConnectionError, aiosmtplib.SMTPResponseException):
            pass  # (as sendmail: the refusal is what tells)
        raise


async def _data(session: aiosmtplib.SMTP, data: bytes) -> None:
    """session.data(data, timeout=None) for bytes written with bare line feeds and no carriage
    return (send_bytes checked): the same bytes on the wire, line-ended and dot-stuffed with
    two bytes.replace rather than aiosmtplib's two regular-expression substitutions, which
    look at every byte of the message in Python's regex engine (a fifth of a mail worker's
    CPU per confirmation e-mail). The body goes out as aiosmtplib's execute_data_command
    sends it: written after the 354, then one read_response (public protocol methods: no
    await comes between the write and the read, so the reply cannot arrive unclaimed)."""
    wire = data.replace(b"\n", b"\r\n")
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    if wire.startswith(b"."):
        wire = b"." + wire
    wire = wire.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    start = await session.execute_command(b"DATA", timeout=None)
    if start.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    protocol = session.protocol
    if protocol is None:  # (execute_command closed it: the server said 421)
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(wire)
        response = await protocol.read_response(timeout=None)
    except aiosmtplib.SMTPServerDisconnected:
        session.close()  # as session.data does
        raise
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(response.code, response.message)


# An address as Chorus keeps them (app/core/addresses.check_email: an ASCII dot-atom at a
# domain): aiosmtplib's mail() and rcpt() would send it as <address>, after parsing it with
# email.utils.parseaddr and checking it for characters a command line cannot carry, which
# such an address has none of. That parse was a sixth of a mail worker's event-loop CPU per
# e-mail; for these addresses _mail and _rcpt send the same command lines without it, and
# anything else goes through aiosmtplib's own.
PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


async def _mail(session: aiosmtplib.SMTP, sender: str, options: list[str]) -> None:
    """session.mail(sender, options=options), as aiosmtplib 5 sends and judges it."""
    if not PLAIN_ADDRESS.fullmatch(sender):
        await session.mail(sender, options=options, timeout=None)
        return
    option_bytes = [option.encode("ascii") for option in options]
    response = await session.execute_command(
        b"MAIL", f"FROM:<{sender}>".encode(), *option_bytes, timeout=None
    )
    if response.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)


async def _rcpt(session: aiosmtplib.SMTP, recipient: str) -> None:
    """session.rcpt(recipient), as aiosmtplib 5 sends and judges it."""
    if not PLAIN_ADDRESS.fullmatch(recipient):
        await session.rcpt(recipient, timeout=None)
        return
    response = await session.execute_command(b"RCPT", f"TO:<{recipient}>".encode(), timeout=None)
    if response.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
