"""The outbox worker's loop: claims due messages, renders them, sends them, records the result.

Several workers may run against one PostgreSQL: a claim takes rows with `FOR UPDATE SKIP LOCKED`
and leases them (`locked_until`), so no two workers hold the same message; a worker that dies
leaves its lease to expire and another worker takes the message over. Each message is marked
sent in its own commit right after the SMTP server accepted it, so a crash re-sends at most the
message in flight at that instant (and with the same Message-ID, which receivers de-duplicate).

The rows are read and written through app/email/outbox.py, the MIME message is built by
app/email/mime.py, and the SMTP connections are app/email/smtp.py's; this module runs the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosmtplib
from fastapi_mail import ConnectionConfig
from fastapi_mail.connection import Connection
from fastapi_mail.errors import ConnectionErrors
from sqlalchemy import Engine
from sqlmodel import Session

import app.tasks  # noqa: F401  (registers every domain's renderers)
from app.core import metrics
from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox, smtp
from app.email import service as email_service
from app.email.mime import MimeBuilder, UnsafeHeader
from app.email.models import SuppressionReason
from app.email.outbox import Claimed
from app.email.service import (
    AFTER_SENT,
    PREFETCHERS,
    RENDERERS,
    SENDERS,
    EmailMessage,
    Outcome,
    SendFailed,
    Undeliverable,
)

log = logging.getLogger(__name__)

# How long a commit of "sent" marks waits for the lanes still handing a message to the server.
FLUSH_LINGER_SECONDS = 0.002


@dataclass
class Outgoing:
    claim: Claimed
    recipient: str
    mime: bytes | Any  # its bytes, or an email.message.Message (mime.MimeBuilder.build)


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
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.mime = MimeBuilder(settings, config)
        self.connections = smtp.SmtpConnections(config)
        # Messages the SMTP server accepted, waiting to be marked sent by the next group commit.
        self._sent: list[tuple[Claimed, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._sending = 0  # lanes handing a message to the SMTP server this moment
        # Progress (a batch done, a message handled): `chorus worker --health-port` reads it.
        self.heartbeat = metrics.Heartbeat(max_age=settings.WORKER_HEALTH_MAX_SECONDS)

    # --- database side (synchronous, each step its own short transaction) --------------------

    def claim(self, limit: int) -> list[Claimed]:
        """Lease up to `limit` due messages to this worker (committed at once)."""
        with Session(self.engine) as session:
            claims = outbox.claim(
                session,
                worker=self.name,
                limit=limit,
                lease_seconds=self.settings.OUTBOX_LEASE_SECONDS,
            )
            session.commit()
        return claims

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
        undeliverable: list[tuple[Claimed, Undeliverable]] = []
        with Session(self.engine) as session:
            loaded = self._prefetch(session, claims)
            for claim in claims:
                render = RENDERERS.get(claim.kind)
                try:
                    if render is None:
                        raise LookupError(f"no renderer for outbox kind {claim.kind!r}")
                    message = render(session, claim.payload, self.settings)
                except Undeliverable as exc:  # the renderer knows it never will be
                    log.warning("outbox message %s cannot be sent: %s", claim.id, exc)
                    undeliverable.append((claim, exc))
                    continue
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
            self._finish(claim)
        for claim, error in broken:
            self.record_failure(claim, error, permanent=False)
        for claim, reason in undeliverable:
            self.record_failure(claim, reason, permanent=True)
        return ready, len(cancelled)

    def _finish(self, claim: Claimed, *, error: str | None = None) -> None:
        """A message that will not be sent: failed with `error`, or cancelled without one."""
        with Session(self.engine) as session:
            if error is None:
                held = outbox.cancel(session, claim.id, worker=self.name)
            else:
                held = outbox.fail(session, claim.id, worker=self.name, reason=error)
            session.commit()
        if not held:
            log.warning("outbox message %s: lease lost before its result was recorded", claim.id)

    def record_sent_many(self, claims: list[Claimed]) -> None:
        """Mark messages this worker holds as sent, in one statement and one commit, with what
        their kinds do once sent (AFTER_SENT) in the same transaction."""
        with Session(self.engine) as session:
            plain = [claim.id for claim in claims if claim.kind not in AFTER_SENT]
            held = outbox.mark_sent(session, plain, worker=self.name) if plain else 0
            done: dict[str, list[dict[str, Any]]] = {}
            for claim in claims:  # (few: letters) one by one, to know which this worker held
                if claim.kind in AFTER_SENT and outbox.mark_sent(
                    session, [claim.id], worker=self.name
                ):
                    held += 1
                    done.setdefault(claim.kind, []).append(claim.payload)
            for kind, payloads in done.items():
                try:
                    with session.begin_nested():
                        AFTER_SENT[kind](session, payloads)
                except Exception:  # its own failure: the messages were sent all the same
                    log.exception("what follows sending %d %s messages failed", len(payloads), kind)
            session.commit()
        metrics.MAILS_SENT.inc(held)
        lost = len(claims) - held
        if lost:
            log.warning("%d outbox messages: lease lost before they were marked sent", lost)

    async def mark_sent(self, claim: Claimed) -> None:
        """Record that the SMTP server accepted a message; returns once that is committed.

        The lanes share commits: whatever was accepted while the previous commit ran goes in
        the next one. A lane still waits for its message's commit before sending another, so a
        crash can re-send at most one message per lane, as with a commit per message.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append((claim, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_sent())
        await done

    async def _flush_sent(self) -> None:
        while self._sent:
            if self._sending:
                # Other lanes are handing their messages to the server this moment: a moment's
                # wait lets them share this commit (commits of five messages on average, each
                # a transaction's work in Python, were a third of a worker's CPU per e-mail).
                await asyncio.sleep(FLUSH_LINGER_SECONDS)
            batch, self._sent = self._sent, []
            try:
                await asyncio.to_thread(self.record_sent_many, [c for c, _ in batch])
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
        """Record why a message was not sent: retried with backoff, or failed for good when
        `permanent` or out of attempts. The reason is what admins (and, for letters,
        organisers) read."""
        if isinstance(error, UnsafeHeader | Undeliverable | SendFailed):
            reason = str(error)[:2000]  # written for them already
        else:
            reason = f"{type(error).__name__}: {error}"[:2000]
        if permanent or claim.attempts >= self.settings.OUTBOX_MAX_ATTEMPTS:
            log.error("outbox message %s failed for good: %s", claim.id, reason)
            self._finish(claim, error=reason)
            return
        delay = min(self.settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** (claim.attempts - 1), 3600.0)
        delay *= random.uniform(0.8, 1.2)  # spread retries so workers do not stampede
        log.warning("outbox message %s: %s; retrying in %.0fs", claim.id, reason, delay)
        at = utcnow() + timedelta(seconds=delay)
        with Session(self.engine) as session:
            held = outbox.retry_later(session, claim.id, worker=self.name, at=at, reason=reason)
            session.commit()
        if not held:
            log.warning("outbox message %s: lease lost before its result was recorded", claim.id)

    def record_outcomes(self, outcomes: list[Outcome]) -> None:
        """Record what a sender (SENDERS) did: sent and deferred messages in one commit, then
        each failure (with the backoff of e-mail) and cancellation."""
        with Session(self.engine) as session:
            sent = [outcome.claim.id for outcome in outcomes if outcome.sent]
            if sent:
                outbox.mark_sent(session, sent, worker=self.name)
            for outcome in outcomes:
                if outcome.not_before is not None:
                    outbox.defer(session, outcome.claim.id, worker=self.name, at=outcome.not_before)
            session.commit()
        for outcome in outcomes:
            if outcome.error is not None:
                self.record_failure(outcome.claim, SendFailed(outcome.error), permanent=False)
            elif not outcome.sent and outcome.not_before is None:
                self._finish(outcome.claim)

    def record_bounce(self, claim: Claimed, recipient: str) -> None:
        """A hard bounce: no more campaign updates to this address."""
        with Session(self.engine) as session:
            email_service.suppress(session, email=recipient, reason=SuppressionReason.bounced)
            session.commit()
        log.warning("outbox message %s bounced; its address gets no more updates", claim.id)

    # --- building (mime.py) and sending (smtp.py) ---------------------------------------------

    async def build(self, claim: Claimed, message: EmailMessage) -> Outgoing:
        """The MIME message to send; UnsafeHeader for a header value that cannot be sent."""
        mime = await self.mime.build(claim.id, message)
        return Outgoing(claim=claim, recipient=message.to, mime=mime)

    async def _send_lane(self, lane: list[Outgoing]) -> None:
        """Send a lane of messages over one SMTP connection, recording each result."""
        processed = 0
        connection: Connection | None = None
        try:
            connection, reused = await self.connections.connect()
            for outgoing in lane:
                try:
                    await self._send(connection, outgoing)
                except aiosmtplib.SMTPServerDisconnected:
                    if not (reused and processed == 0):
                        raise  # the rest of the lane retries below
                    # The server closed the connection we kept: once, with a fresh one.
                    connection.session.close()
                    connection, reused = await self.connections.connect()
                    await self._send(connection, outgoing)
                    await self.mark_sent(outgoing.claim)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    permanent = smtp.is_permanent(exc)
                    if permanent and smtp.is_bounce(exc):
                        await asyncio.to_thread(
                            self.record_bounce, outgoing.claim, outgoing.recipient
                        )
                    await asyncio.to_thread(
                        self.record_failure, outgoing.claim, exc, permanent=permanent
                    )
                except Exception as exc:
                    # Not the server's answer but this message's own fault (it cannot be
                    # written out): its failure, never the lane's.
                    if isinstance(exc, UnsafeHeader):
                        log.warning("outbox message %s cannot be sent: %s", outgoing.claim.id, exc)
                    else:
                        log.exception("outbox message %s cannot be sent", outgoing.claim.id)
                    await asyncio.to_thread(
                        self.record_failure, outgoing.claim, exc, permanent=False
                    )
                    processed += 1
                    if not isinstance(exc, UnsafeHeader):
                        # It may have stopped halfway through a transaction: start afresh.
                        connection.session.close()
                        connection, reused = await self.connections.connect()
                    continue
                else:
                    await self.mark_sent(outgoing.claim)
                processed += 1
                self.heartbeat.beat()
            self.connections.keep(connection)
        except (ConnectionErrors, aiosmtplib.SMTPException, OSError) as exc:
            if connection is not None:
                connection.session.close()
            # The server is unreachable or went away: what was not handled retries later.
            for outgoing in lane[processed:]:
                await asyncio.to_thread(self.record_failure, outgoing.claim, exc, permanent=False)

    async def _send(self, connection: Connection, outgoing: Outgoing) -> None:
        self._sending += 1
        try:
            await smtp.send(
                connection,
                sender=self.settings.MAIL_FROM,
                recipient=outgoing.recipient,
                message=outgoing.mime,
            )
        finally:
            self._sending -= 1

    async def _send_by(self, kind: str, claims: list[Claimed]) -> None:
        """Deliver messages of a kind that is not e-mail through its sender (SENDERS)."""
        try:
            outcomes = await SENDERS[kind](claims, self.settings, self.engine)
        except Exception as exc:  # the sender's own failure: every message retries later
            log.exception("sending %d %s messages failed", len(claims), kind)
            outcomes = [Outcome(claim, error=f"{type(exc).__name__}: {exc}") for claim in claims]
        await asyncio.to_thread(self.record_outcomes, outcomes)
        self.heartbeat.beat()

    async def run_once(self) -> int:
        """Claim, render and send one batch. Returns how many messages it handled."""
        claims = await asyncio.to_thread(self.claim, self.settings.WORKER_BATCH_SIZE)
        if not claims:
            return 0
        by_sender: dict[str, list[Claimed]] = {}
        for claim in claims:
            if claim.kind in SENDERS:
                by_sender.setdefault(claim.kind, []).append(claim)
        mail = [claim for claim in claims if claim.kind not in SENDERS]
        ready, cancelled = await asyncio.to_thread(self.render, mail) if mail else ([], 0)
        outgoing = []
        for claim, message in ready:
            try:
                outgoing.append(await self.build(claim, message))
            except Exception as exc:  # this message's failure, not the batch's
                if isinstance(exc, UnsafeHeader):
                    log.warning("outbox message %s cannot be built: %s", claim.id, exc)
                else:
                    log.exception("outbox message %s cannot be built", claim.id)
                # Retried with backoff, then failed: its data may be corrected meanwhile.
                await asyncio.to_thread(self.record_failure, claim, exc, permanent=False)
        lanes_count = min(self.settings.WORKER_CONCURRENCY, len(outgoing)) or 1
        lanes = [outgoing[i::lanes_count] for i in range(lanes_count)]
        # Every lane runs to its end before the next batch, whatever happens to another.
        results = await asyncio.gather(
            *(self._send_lane(lane) for lane in lanes if lane),
            *(self._send_by(kind, group) for kind, group in by_sender.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.error("an outbox lane stopped early", exc_info=result)
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
            await self.connections.close_idle()
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
                # Nothing to send: no connection is kept waiting.
                await self.connections.close_idle()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.WORKER_POLL_SECONDS)
                except TimeoutError:
                    pass
        await self.connections.close_idle()
        log.info("outbox worker %s stopped", self.name)
