"""The outbox worker: claims due messages, renders them, sends them over SMTP, records the result.

Several workers may run against one PostgreSQL: a claim takes rows with `FOR UPDATE SKIP LOCKED`
and leases them (`locked_until`), so no two workers hold the same message; a worker that dies
leaves its lease to expire and another worker takes the message over. Each message is marked
sent in its own commit right after the SMTP server accepted it, so a crash re-sends at most the
message in flight at that instant (and with the same Message-ID, which receivers de-duplicate).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from email import encoders
from email._policybase import Compat32
from email.generator import BytesGenerator
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.utils import formataddr
from typing import Any

import aiosmtplib
from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType
from fastapi_mail.connection import Connection
from fastapi_mail.errors import ConnectionErrors
from fastapi_mail.schemas import MultipartSubtypeEnum
from pydantic import NameEmail
from sqlalchemy import Engine, Update, literal_column, or_, select, text, update
from sqlmodel import Session, col

import app.tasks  # noqa: F401  (registers every domain's renderers)
from app.core import metrics
from app.core.config import Settings
from app.core.db import utcnow
from app.email import service as email_service
from app.email.models import OutboxMessage, OutboxStatus, SuppressionReason
from app.email.service import PREFETCHERS, RENDERERS, Attachment, EmailMessage

log = logging.getLogger(__name__)

# A connection left open longer than this is closed rather than reused (servers drop idle
# clients, and a stale connection would fail a lane).
IDLE_REUSE_SECONDS = 5.0


@dataclass
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


@dataclass
class Outgoing:
    claim: Claimed
    recipient: str
    mime: Any  # email.message.Message built by fastapi-mail


def mail_config(settings: Settings, *, server: str, port: int) -> ConnectionConfig:
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


# The headers that describe a MIME part itself; the others (From, Subject...) are the message's.
_PART_HEADERS = frozenset(("content-type", "mime-version", "content-transfer-encoding"))


def _move_message_headers(source: Any, target: Any) -> None:
    for name, value in source.items():
        if name.lower() not in _PART_HEADERS:
            target[name] = value
    for name in {name for name in source.keys() if name.lower() not in _PART_HEADERS}:
        del source[name]


def unwrapped(message: Any) -> Any:
    """The multipart/alternative that fastapi-mail wraps in a multipart/related of one part
    (which relates nothing), carrying the message's headers; other shapes as they are."""
    payload = message.get_payload()
    if message.get_content_type() != "multipart/related" or len(payload) != 1:
        return message
    (body,) = payload
    _move_message_headers(message, body)
    return body


def with_attachments(body: Any, attachments: list[Attachment]) -> MIMEMultipart:
    """multipart/mixed: the body (the text and HTML alternatives) first, then each attachment.

    (fastapi-mail would put attachments inside multipart/alternative, where mail clients
    treat them as yet another version of the body.)
    """
    mixed = MIMEMultipart("mixed")
    _move_message_headers(body, mixed)
    mixed.attach(body)
    for attachment in attachments:
        main, _, sub = attachment.media_type.partition("/")
        part = MIMEBase(main, sub)
        part.set_payload(attachment.content)
        encoders.encode_base64(part)
        part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
        mixed.attach(part)
    return mixed


class _QuickHeaders(Compat32):
    """Compat32 (what fastapi-mail's messages use), without its costly folding machinery for
    headers that need none: a short ASCII value is written as it is, which is exactly what
    Compat32 would write. Anything else (long, non-ASCII, encoded) goes the usual way."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + len(value) + 2 <= 78
            and "\n" not in value
            and "\r" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_QUICK_HEADERS = _QuickHeaders()


def flatten(mime: Any) -> bytes:
    """The message as the bytes sent over SMTP (aiosmtplib normalises line ends to CRLF).

    Byte for byte what email.generator.BytesGenerator writes (tests/email/test_mime.py
    holds it to that), for the shapes our messages take: headers, then either a multipart
    body with its boundary or an ASCII (already transfer-encoded) payload. The generator
    does the same through a copy of itself and a buffer per part, and that machinery was a
    fifth of a worker's CPU. Any other shape goes to the generator itself.
    """
    chunks: list[bytes] = []
    if _flatten_into(mime, chunks):
        return b"".join(chunks)
    with io.BytesIO() as out:
        BytesGenerator(out, policy=_QUICK_HEADERS).flatten(mime)
        return out.getvalue()


def _flatten_into(part: Any, chunks: list[bytes]) -> bool:
    """Append a part as BytesGenerator would; False (chunks then unusable) for any shape this
    does not cover."""
    for name, value in part.raw_items():
        chunks.append(_QUICK_HEADERS.fold_binary(name, value))
    chunks.append(b"\n")
    payload = part._payload  # noqa: SLF001 (the generator reads it so too)
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        boundary = part.get_boundary()
        if (
            not isinstance(payload, list)
            or not boundary
            or part.get_content_subtype() == "signed"  # the generator writes those verbatim
            or part.preamble is not None
            or part.epilogue is not None
        ):
            return False
        delimiter = f"\n--{boundary}\n".encode("ascii")
        chunks.append(delimiter[1:])
        for index, subpart in enumerate(payload):
            if index:
                chunks.append(delimiter)
            if not _flatten_into(subpart, chunks):
                return False
        chunks.append(f"\n--{boundary}--\n".encode("ascii"))
        return True
    if payload is None:
        return True
    if (
        maintype == "message"
        or not isinstance(payload, str)
        or not payload.isascii()
        or "\r" in payload
        or "From " in payload  # Compat32 would mangle it to ">From "
    ):
        return False
    chunks.append(payload.encode("ascii"))
    return True


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


class OutboxWorker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        config: ConnectionConfig,
        *,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.config = config
        self.mailer = FastMail(config)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.domain = settings.MAIL_FROM.rpartition("@")[2] or "chorus.local"
        # SMTP connections left open by lanes, with when: reused by the next batch's lanes.
        self._idle: list[tuple[Connection, float]] = []
        # Messages the SMTP server accepted, waiting to be marked sent by the next group commit.
        self._sent: list[tuple[int, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        # Progress (a batch done, a message handled): `chorus worker --health-port` reads it.
        self.heartbeat = metrics.Heartbeat(max_age=settings.WORKER_HEALTH_MAX_SECONDS)

    # --- database side (synchronous, each step its own short transaction) --------------------

    def claim_statement(self, limit: int) -> Update:
        """Lease up to `limit` due messages to this worker, returning what it needs of them."""
        now = utcnow()
        due = (
            select(col(OutboxMessage.id))
            .where(
                # A literal, not a parameter: a prepared statement's generic plan can use the
                # partial index only when the condition is visibly its predicate.
                col(OutboxMessage.status) == literal_column(f"'{OutboxStatus.pending.value}'"),
                col(OutboxMessage.next_attempt_at) <= now,
                or_(
                    col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now
                ),
            )
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(due.scalar_subquery()))
            .values(
                locked_until=now + timedelta(seconds=self.settings.OUTBOX_LEASE_SECONDS),
                locked_by=self.name,
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(
                col(OutboxMessage.id),
                col(OutboxMessage.kind),
                col(OutboxMessage.payload),
                col(OutboxMessage.attempts),
            )
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def plan_claims_in_index_order(session: Session) -> None:
        """Make this transaction's claim read its batch off the front of ix_outbox_pending.

        That index is in the claim's order, but in a surge the queue grows faster than
        autovacuum refreshes the statistics; on stale ones PostgreSQL believes a few rows are
        pending and fetches and sorts all of them instead (100k: 80 ms per claim, spilled to
        disk), while the index gives the batch in a millisecond whatever the statistics say.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT set_config('enable_sort', 'off', true)"))

    def claim(self, limit: int) -> list[Claimed]:
        with Session(self.engine) as session:
            self.plan_claims_in_index_order(session)
            rows = session.execute(self.claim_statement(limit)).all()
            session.commit()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    @staticmethod
    def _prefetch(session: Session, claims: list[Claimed]) -> list[Any]:
        """Load what the batch's renderers read, a query or two per kind (see PREFETCHERS)."""
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for claim in claims:
            by_kind.setdefault(claim.kind, []).append(claim.payload)
        loaded: list[Any] = []
        for kind, payloads in by_kind.items():
            prefetch = PREFETCHERS.get(kind)
            if prefetch is not None:
                try:
                    loaded.extend(prefetch(session, payloads))
                except Exception:  # only an optimisation: the renderers load what they need
                    log.exception("prefetching %s messages failed", kind)
                    session.rollback()
        return loaded

    def render(self, claims: list[Claimed]) -> tuple[list[tuple[Claimed, EmailMessage]], int]:
        """Render claimed jobs; those that no longer apply are cancelled. -> (ready, cancelled)"""
        ready: list[tuple[Claimed, EmailMessage]] = []
        cancelled: list[Claimed] = []
        broken: list[tuple[Claimed, Exception]] = []
        with Session(self.engine) as session:
            loaded = self._prefetch(session, claims)
            for claim in claims:
                render = RENDERERS.get(claim.kind)
                try:
                    if render is None:
                        raise LookupError(f"no renderer for outbox kind {claim.kind!r}")
                    message = render(session, claim.payload, self.settings)
                except Exception as exc:  # a bug or bad data: retry later, keep the job
                    log.exception("rendering outbox message %s failed", claim.id)
                    broken.append((claim, exc))
                    continue
                if message is None:
                    cancelled.append(claim)
                else:
                    ready.append((claim, message))
            del loaded
        # Recorded after the read session is closed: SQLite allows one writer at a time.
        for claim in cancelled:
            self._finish(claim.id, status=OutboxStatus.cancelled)
        for claim, error in broken:
            self.record_failure(claim, error, permanent=False)
        return ready, len(cancelled)

    def _update_own(self, message_id: int, **values: Any) -> None:
        """Update a message this worker still holds; a worker whose lease ran out (and whose
        message another worker may have taken over) changes nothing."""
        with Session(self.engine) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == message_id,
                    col(OutboxMessage.locked_by) == self.name,
                    col(OutboxMessage.status) == OutboxStatus.pending,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            log.warning("outbox message %s: lease lost before its result was recorded", message_id)

    def _finish(self, message_id: int, *, status: OutboxStatus, error: str | None = None) -> None:
        """A message that will not be sent (failed or cancelled); sent ones: record_sent_many."""
        self._update_own(message_id, status=status, locked_until=None, last_error=error)

    def record_sent_many(self, message_ids: list[int]) -> None:
        """Mark messages this worker holds as sent, in one statement and one commit."""
        with Session(self.engine) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_(message_ids),
                    col(OutboxMessage.locked_by) == self.name,
                    col(OutboxMessage.status) == OutboxStatus.pending,
                )
                .values(
                    status=OutboxStatus.sent, locked_until=None, last_error=None, sent_at=utcnow()
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
        metrics.MAILS_SENT.inc(result.rowcount)  # type: ignore[attr-defined]
        lost = len(message_ids) - result.rowcount  # type: ignore[attr-defined]
        if lost:
            log.warning("%d outbox messages: lease lost before they were marked sent", lost)

    async def mark_sent(self, claim: Claimed) -> None:
        """Record that the SMTP server accepted a message; returns once that is committed.

        The lanes share commits: whatever was accepted while the previous commit ran goes in
        the next one. A lane still waits for its message's commit before sending another, so a
        crash can re-send at most one message per lane, as with a commit per message.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append((claim.id, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_sent())
        await done

    async def _flush_sent(self) -> None:
        while self._sent:
            batch, self._sent = self._sent, []
            try:
                await asyncio.to_thread(self.record_sent_many, [i for i, _ in batch])
            except Exception as exc:  # the database is away: the lease makes them retry
                log.exception("could not mark %d outbox messages sent", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def record_failure(self, claim: Claimed, error: BaseException, *, permanent: bool) -> None:
        reason = f"{type(error).__name__}: {error}"[:2000]
        if permanent or claim.attempts >= self.settings.OUTBOX_MAX_ATTEMPTS:
            log.error("outbox message %s failed for good: %s", claim.id, reason)
            self._finish(claim.id, status=OutboxStatus.failed, error=reason)
            return
        delay = min(self.settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** (claim.attempts - 1), 3600.0)
        delay *= random.uniform(0.8, 1.2)  # spread retries so workers do not stampede
        log.warning("outbox message %s: %s; retrying in %.0fs", claim.id, reason, delay)
        self._update_own(
            claim.id,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            locked_until=None,
            last_error=reason,
        )

    def record_bounce(self, claim: Claimed, recipient: str) -> None:
        """A hard bounce: no more campaign updates to this address."""
        with Session(self.engine) as session:
            email_service.suppress(session, email=recipient, reason=SuppressionReason.bounced)
            session.commit()
        log.warning("outbox message %s bounced; its address gets no more updates", claim.id)

    # --- SMTP side ------------------------------------------------------------------------------

    async def build(self, claim: Claimed, message: EmailMessage) -> Outgoing:
        # model_construct: every field is ours and already checked, and validation (which
        # runs email-validator on the recipient again) was a tenth of a message's CPU.
        schema = MessageSchema.model_construct(
            # fastapi-mail re-validates recipients and turns an IDNA domain back into Unicode,
            # which it then cannot encode: it gets the sender as a stand-in, and the real
            # recipient goes into the To header and the SMTP envelope below.
            recipients=[NameEmail("", self.settings.MAIL_FROM)],
            subject=message.subject,
            body=message.text,
            alternative_body=message.html,
            subtype=MessageType.plain,
            multipart_subtype=MultipartSubtypeEnum.alternative,
            headers=message.headers or None,
        )
        mime: Any = unwrapped(await self.mailer.get_message(schema))
        if message.attachments:
            mime = with_attachments(mime, message.attachments)
        if message.reply_to:
            mime["Reply-To"] = ", ".join(
                formataddr(pair, charset="utf-8") for pair in message.reply_to
            )
        if message.from_name:
            del mime["From"]
            mime["From"] = formataddr((message.from_name, self.settings.MAIL_FROM), "utf-8")
        del mime["To"]
        # formataddr encodes any name (commas, quotes, Hangul) safely (RFC 2047).
        mime["To"] = formataddr((message.to_name or "", message.to), charset="utf-8")
        # Our own MIME boundaries: the email package otherwise invents one per part and
        # compiles a regular expression to check it against the text (a third of the
        # CPU of sending a message). 128 random bits cannot occur in the text by chance.
        # fastapi-mail also gives each multipart a charset and "Content-Transfer-Encoding:
        # base64", which RFC 2045 forbids on a multipart (only 7bit, 8bit or binary): the
        # header goes and the content type is written anew.
        for part in mime.walk():
            if part.is_multipart():
                part.replace_header(
                    "Content-Type",
                    f'{part.get_content_type()}; boundary="=_chorus_{secrets.token_hex(16)}"',
                )
                del part["Content-Transfer-Encoding"]
        # A stable Message-ID: if a crash makes us send a message twice, receivers see one.
        del mime["Message-ID"]
        mime["Message-ID"] = f"<outbox-{claim.id}@{self.domain}>"
        return Outgoing(claim=claim, recipient=message.to, mime=mime)

    # --- SMTP connections, kept open between batches -------------------------------------------

    async def _connect(self) -> tuple[Connection, bool]:
        """An SMTP connection: one left open by a previous lane if it is recent, else a new
        one. -> (connection, reused)"""
        while self._idle:
            connection, since = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_SECONDS and connection.session.is_connected:
                return connection, True
            await self._close(connection)
        connection = Connection(self.config)
        await connection.__aenter__()
        return connection, False

    @staticmethod
    async def _close(connection: Connection) -> None:
        try:
            await connection.session.quit()
        except (aiosmtplib.SMTPException, OSError):
            connection.session.close()

    async def close_idle(self) -> None:
        """Say goodbye on the connections kept open (when the queue is empty, and on stop)."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await self._close(connection)

    async def _send_lane(self, lane: list[Outgoing]) -> None:
        """Send a lane of messages over one SMTP connection, recording each result."""
        processed = 0
        connection: Connection | None = None
        try:
            connection, reused = await self._connect()
            for outgoing in lane:
                try:
                    await self._send(connection, outgoing)
                except aiosmtplib.SMTPServerDisconnected:
                    if not (reused and processed == 0):
                        raise  # the rest of the lane retries below
                    # The server closed the connection we kept: once, with a fresh one.
                    connection.session.close()
                    connection, reused = await self._connect()
                    await self._send(connection, outgoing)
                    await self.mark_sent(outgoing.claim)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    permanent = is_permanent(exc)
                    if permanent and is_bounce(exc):
                        await asyncio.to_thread(
                            self.record_bounce, outgoing.claim, outgoing.recipient
                        )
                    await asyncio.to_thread(
                        self.record_failure, outgoing.claim, exc, permanent=permanent
                    )
                else:
                    await self.mark_sent(outgoing.claim)
                processed += 1
                self.heartbeat.beat()
            self._idle.append((connection, time.monotonic()))
        except (ConnectionErrors, aiosmtplib.SMTPException, OSError) as exc:
            if connection is not None:
                connection.session.close()
            # The server is unreachable or went away: what was not handled retries later.
            for outgoing in lane[processed:]:
                await asyncio.to_thread(self.record_failure, outgoing.claim, exc, permanent=False)

    async def _send(self, connection: Connection, outgoing: Outgoing) -> None:
        if outgoing.recipient.isascii():
            await connection.session.sendmail(
                self.settings.MAIL_FROM, [outgoing.recipient], flatten(outgoing.mime)
            )
        else:  # needs SMTPUTF8: let aiosmtplib negotiate it
            await connection.session.send_message(outgoing.mime, recipients=[outgoing.recipient])

    async def run_once(self) -> int:
        """Claim, render and send one batch. Returns how many messages it handled."""
        claims = await asyncio.to_thread(self.claim, self.settings.WORKER_BATCH_SIZE)
        if not claims:
            return 0
        ready, cancelled = await asyncio.to_thread(self.render, claims)
        outgoing = []
        for claim, message in ready:
            try:
                outgoing.append(await self.build(claim, message))
            except Exception as exc:  # this message can never be built: fail it, not the batch
                log.exception("outbox message %s cannot be built", claim.id)
                await asyncio.to_thread(self.record_failure, claim, exc, permanent=True)
        lanes_count = min(self.settings.WORKER_CONCURRENCY, len(outgoing)) or 1
        lanes = [outgoing[i::lanes_count] for i in range(lanes_count)]
        await asyncio.gather(*(self._send_lane(lane) for lane in lanes if lane))
        return len(claims)

    async def drain(self, *, max_batches: int = 1000) -> int:
        """Send everything that is due now (used by tests and `chorus worker --once`)."""
        total = 0
        try:
            for _ in range(max_batches):
                handled = await self.run_once()
                if not handled:
                    break
                total += handled
        finally:
            await self.close_idle()
        return total

    async def run(self, stop: asyncio.Event) -> None:
        log.info("outbox worker %s started", self.name)
        while not stop.is_set():
            try:
                handled = await self.run_once()
                self.heartbeat.beat()
            except Exception:
                log.exception("outbox worker loop failed; retrying")
                handled = 0
            if not handled:
                await self.close_idle()  # nothing to send: no connection is kept waiting
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.WORKER_POLL_SECONDS)
                except TimeoutError:
                    pass
        await self.close_idle()
        log.info("outbox worker %s stopped", self.name)
