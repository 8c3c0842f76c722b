"""Outgoing webhooks: registering endpoints, emitting events, and what each attempt did.

The one module that writes `webhook_endpoint`, `webhook_delivery` and `webhook_attempt`.

- Organisers (and admins) register endpoints per campaign (`create`), list them, switch them
  off and on, delete them and read their attempts log; every change is audited.
- `emit` is called by the domain where something happens, in the transaction that makes it
  happen: it queues one outbox message (kind "webhook", the durable queue) and one delivery row
  (the body, cut to the endpoint's scope) per enabled endpoint of the campaign that listens to
  the event. A rolled-back change emits nothing; a committed one is delivered by the worker
  (app/webhooks/sender.py), however long the endpoint is down.
- The worker's side: the events its claimed messages carry (`queued`), those still waiting
  before them (`waiting`, for the order per subject), and `record_attempts`, which logs each
  attempt, tracks how long an endpoint has been failing, and switches it off (telling the
  campaign's organisers by e-mail) after WEBHOOK_DISABLE_AFTER_HOURS of failures.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, tuple_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import FieldError, ProblemError
from app.core.sealing import Unsealable, seal, unseal
from app.email import outbox
from app.email.models import OutboxStatus
from app.webhooks import addresses
from app.webhooks.models import (
    EVENTS,
    DisabledReason,
    Scope,
    WebhookAdmin,
    WebhookAttempt,
    WebhookAttemptAdmin,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.payloads import EventData

KIND = "webhook"  # the outbox kind of an event on its way
DISABLED_KIND = "webhook_disabled"  # the e-mail to organisers when Chorus switches one off
SEAL_PURPOSE = "webhook-secret"
DELIVERY_TABLE = WebhookDelivery.__table__  # type: ignore[attr-defined]


# --- endpoints --------------------------------------------------------------------------------


def _new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _origin(url: str) -> str:
    """The scheme and host of a URL, for the audit log (a path may carry a receiver's token)."""
    parsed = addresses.parse(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


def to_admin(endpoint: WebhookEndpoint) -> WebhookAdmin:
    assert endpoint.id is not None
    return WebhookAdmin(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        scope=endpoint.scope,
        enabled=endpoint.disabled_at is None,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        created_at=endpoint.created_at,
    )


class UrlRefused(ProblemError):
    """422: the URL is not one webhooks may use. The API answers the English reason; `refused`
    keeps the rule and host concerned, for the console to say it in its reader's language."""

    def __init__(self, refused: addresses.Refused) -> None:
        super().__init__(
            422,
            "validation",
            "Your request has invalid fields",
            f"url: {refused}",
            errors=[FieldError(field="url", type="url_refused", message=str(refused))],
        )
        self.refused = refused


def create(
    session: Session, *, actor: User, campaign: Campaign, data: WebhookCreate, settings: Settings
) -> WebhookCreated:
    """Register an endpoint; the answer holds its secret, which is never shown again.

    UrlRefused (422) when the URL is not one webhooks may use (addresses.check: http(s), https
    in production, every address of the host public).
    """
    assert campaign.id is not None
    try:
        addresses.check(data.url, settings)
    except addresses.Refused as exc:
        raise UrlRefused(exc) from None
    secret = _new_secret()
    endpoint = WebhookEndpoint(
        campaign_id=campaign.id,
        url=data.url,
        events=list(data.events),
        scope=data.scope,
        secret_sealed=seal(settings, secret, purpose=SEAL_PURPOSE),
    )
    session.add(endpoint)
    session.flush()
    _audit(session, actor, endpoint, "webhook.create", events=endpoint.events, scope=data.scope)
    return WebhookCreated(**to_admin(endpoint).model_dump(), secret=secret)


def _audit(
    session: Session, actor: User | None, endpoint: WebhookEndpoint, action: str, **details: Any
) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=action,
        subject=f"webhook:{endpoint.id}",
        campaign_id=endpoint.campaign_id,
        details={"url": _origin(endpoint.url), **details},
    )


def list_for_campaign(session: Session, *, campaign_id: int) -> list[WebhookEndpoint]:
    return list(
        session.exec(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.campaign_id == campaign_id)
            .order_by(col(WebhookEndpoint.id))
        )
    )


def managed(session: Session, *, user: User, slug: str, endpoint_id: int) -> WebhookEndpoint:
    """An endpoint of a campaign this user manages; 404 otherwise (nothing is revealed)."""
    campaign = campaign_service.managed(session, user=user, slug=slug)
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.campaign_id != campaign.id:
        raise ProblemError(404, "webhook-not-found", "Webhook endpoint not found")
    return endpoint


def disable(session: Session, *, actor: User, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Switch an endpoint off: no more events are queued for it, and those on their way are
    dropped. Idempotent."""
    if endpoint.disabled_at is None:
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = DisabledReason.organiser
        session.add(endpoint)
        session.flush()
        _audit(session, actor, endpoint, "webhook.disable")
    return endpoint


def enable(session: Session, *, actor: User, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Switch an endpoint on again, its failures forgotten; events from now on reach it.
    Idempotent."""
    if endpoint.disabled_at is not None:
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None
        session.add(endpoint)
        session.flush()
        _audit(session, actor, endpoint, "webhook.enable")
    return endpoint


def remove(session: Session, *, actor: User, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its attempts log and the events still on their way to it."""
    _audit(session, actor, endpoint, "webhook.delete")
    session.delete(endpoint)
    session.flush()


def attempts(
    session: Session, *, endpoint_id: int, before: int | None = None, limit: int = 100
) -> tuple[list[WebhookAttemptAdmin], int | None]:
    """An endpoint's attempts, newest first, from before the id `before`.
    -> (a page of them, the `before` of the next page or None)"""
    query = select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(col(WebhookAttempt.id) < before)
    rows = session.exec(query.order_by(col(WebhookAttempt.id).desc()).limit(limit + 1)).all()
    page = [WebhookAttemptAdmin.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return page, (page[-1].id if len(rows) > limit else None)


def next_tries(
    session: Session, *, endpoint: WebhookEndpoint, attempt_ids: list[int]
) -> dict[int, datetime]:
    """When the worker tries the event of each of these failed attempts again, by attempt id:
    for the latest attempt of an event still on its way (its outbox message pending, the
    endpoint on), the time its message is due. An event delivered, given up, or dropped
    because the endpoint is off has none; nor has one the worker is sending right now."""
    if endpoint.disabled_at is not None or not attempt_ids:
        return {}
    outcome = outbox.outcomes()
    rows = session.execute(
        select(col(WebhookAttempt.id), outcome.c.next_attempt_at)
        .join(outcome, outcome.c.id == col(WebhookAttempt.outbox_id))
        .where(
            col(WebhookAttempt.id).in_(attempt_ids),
            col(WebhookAttempt.endpoint_id) == endpoint.id,
            col(WebhookAttempt.delivered).is_(False),
            outcome.c.status == OutboxStatus.pending,
            # The claim that made this attempt counted it; a later claim counts one more.
            outcome.c.attempts == col(WebhookAttempt.attempt),
        )
    ).all()
    return {attempt_id: due for attempt_id, due in rows}


# --- emitting events --------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ENDPOINT = WebhookEndpoint.__table__  # type: ignore[attr-defined]
# The campaign's enabled endpoints, for every event emitted (every confirmation): built once
# and run on the connection, not an ORM select built per call (a tenth of a confirmation's
# server CPU).
_LISTENING = (
    sa_select(_ENDPOINT.c.id, _ENDPOINT.c.scope, _ENDPOINT.c.events)
    .where(_ENDPOINT.c.campaign_id == bindparam("campaign_id"))
    .where(_ENDPOINT.c.disabled_at.is_(None))
    .order_by(_ENDPOINT.c.id)
)


def emit(
    session: Session,
    *,
    campaign_id: int,
    event: str,
    subject: str,
    data: EventData,
    key: str | None = None,
) -> int:
    """Queue `event` for every enabled endpoint of the campaign that listens to it, in the
    caller's transaction, each with the data its scope allows. `subject` names what the event
    is about ("signature:42"): one endpoint gets a subject's events in the order they were
    emitted. `key` tells events apart when a subject has the event more than once (a monthly
    gift's payments); an event emitted again with the same key is not queued twice. Returns
    how many deliveries were queued."""
    assert event in EVENTS, event
    rows = session.connection().execute(_LISTENING, {"campaign_id": campaign_id}).all()
    listening = [(endpoint_id, scope) for endpoint_id, scope, events in rows if event in events]
    if not listening:
        return 0  # the usual case: one indexed read
    occurred = _iso(utcnow())
    campaign = campaign_service.slug_of(session, campaign_id=campaign_id)
    queued = 0
    for endpoint_id, scope in listening:
        outbox_id = outbox.enqueue(
            session,
            kind=KIND,
            payload={"endpoint_id": endpoint_id},
            dedup_key=outbox.dedup_key(KIND, endpoint_id, event, key or subject),
        )
        if outbox_id is None:
            continue  # emitted before
        body = {
            "type": event,
            "timestamp": occurred,
            "campaign": campaign,
            "data": data.for_scope(Scope(scope)),
        }
        session.execute(
            # Core, not the ORM-enabled insert (twice the Python per row): this runs for every
            # confirmation while an endpoint listens.
            insert(DELIVERY_TABLE).values(
                outbox_id=outbox_id,
                endpoint_id=endpoint_id,
                event=event,
                subject=subject,
                message_id=f"msg_{uuid.uuid4().hex}",
                body=body,
                created_at=utcnow(),
            )
        )
        queued += 1
    return queued


# --- the worker's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """An event on its way to an enabled endpoint, as the worker sends it."""

    outbox_id: int
    endpoint_id: int
    url: str
    secret: str | None  # None: it cannot be unsealed (SECRET_KEY changed without a fallback)
    event: str
    subject: str
    message_id: str
    body: dict[str, Any]


def queued(session: Session, settings: Settings, *, outbox_ids: list[int]) -> dict[int, Queued]:
    """The events these outbox messages carry, by message id; a message missing from the answer
    has no event to deliver any more (its endpoint was deleted or switched off)."""
    rows = session.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
        .where(
            col(WebhookDelivery.outbox_id).in_(outbox_ids),
            col(WebhookEndpoint.disabled_at).is_(None),
        )
    ).all()
    found: dict[int, Queued] = {}
    for delivery, endpoint in rows:
        try:
            secret: str | None = unseal(settings, endpoint.secret_sealed, purpose=SEAL_PURPOSE)
        except Unsealable:
            secret = None
        found[delivery.outbox_id] = Queued(
            outbox_id=delivery.outbox_id,
            endpoint_id=delivery.endpoint_id,
            url=endpoint.url,
            secret=secret,
            event=delivery.event,
            subject=delivery.subject,
            message_id=delivery.message_id,
            body=delivery.body,
        )
    return found


def waiting(
    session: Session, *, subjects: set[tuple[int, str]], up_to: int
) -> dict[tuple[int, str], list[tuple[int, datetime]]]:
    """For each (endpoint id, subject): its events still on their way (outbox message pending)
    with an outbox id up to `up_to`, oldest first, as (outbox id, when it is due)."""
    if not subjects:
        return {}
    outcome = outbox.outcomes()
    rows = session.execute(
        select(
            col(WebhookDelivery.endpoint_id),
            col(WebhookDelivery.subject),
            col(WebhookDelivery.outbox_id),
            outcome.c.next_attempt_at,
        )
        .join(outcome, outcome.c.id == col(WebhookDelivery.outbox_id))
        .where(
            tuple_(col(WebhookDelivery.endpoint_id), col(WebhookDelivery.subject)).in_(
                sorted(subjects)
            ),
            col(WebhookDelivery.outbox_id) <= up_to,
            outcome.c.status == OutboxStatus.pending,
        )
        .order_by(col(WebhookDelivery.outbox_id))
    ).all()
    found: dict[tuple[int, str], list[tuple[int, datetime]]] = {}
    for endpoint_id, subject, outbox_id, due in rows:
        found.setdefault((endpoint_id, subject), []).append((outbox_id, due))
    return found


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as the worker saw it."""

    outbox_id: int
    endpoint_id: int
    message_id: str
    event: str
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.error is None


def record_attempts(
    session: Session, settings: Settings, *, tried: list[Attempt], finished: list[int]
) -> list[int]:
    """Log the attempts, forget the events in `finished` (delivered, dropped or given up on:
    their bodies are not kept), and track each endpoint's failures: a success clears them, and
    an endpoint failing for WEBHOOK_DISABLE_AFTER_HOURS is switched off and its organisers told.
    Returns the ids of the endpoints switched off."""
    if tried:
        session.execute(
            insert(WebhookAttempt),
            [
                {
                    "endpoint_id": a.endpoint_id,
                    "outbox_id": a.outbox_id,
                    "message_id": a.message_id,
                    "event": a.event,
                    "attempt": a.attempt,
                    "attempted_at": a.attempted_at,
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                    "delivered": a.delivered,
                }
                for a in tried
            ],
        )
    if finished:
        session.execute(
            delete(WebhookDelivery)
            .where(col(WebhookDelivery.outbox_id).in_(finished))
            .execution_options(synchronize_session=False)
        )
    succeeded = {a.endpoint_id for a in tried if a.delivered}
    first_failure: dict[int, datetime] = {}
    for a in tried:
        if a.endpoint_id not in succeeded:
            first_failure[a.endpoint_id] = min(
                a.attempted_at, first_failure.get(a.endpoint_id, a.attempted_at)
            )
    if succeeded:
        session.execute(
            update(WebhookEndpoint)
            .where(col(WebhookEndpoint.id).in_(sorted(succeeded)))
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    for endpoint_id, since in first_failure.items():
        session.execute(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.failing_since).is_(None)
            )
            .values(failing_since=since)
            .execution_options(synchronize_session=False)
        )
    return _disable_failing(session, settings, endpoint_ids=sorted(first_failure))


def _disable_failing(session: Session, settings: Settings, *, endpoint_ids: list[int]) -> list[int]:
    if not endpoint_ids:
        return []
    now = utcnow()
    cutoff = now - timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    switched_off = (
        session.execute(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id).in_(endpoint_ids),
                col(WebhookEndpoint.disabled_at).is_(None),
                col(WebhookEndpoint.failing_since) <= cutoff,
            )
            .values(disabled_at=now, disabled_reason=DisabledReason.failing)
            .returning(col(WebhookEndpoint.id))
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    for endpoint_id in switched_off:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        _audit(session, None, endpoint, "webhook.auto_disable")
        for user in campaign_service.organisers(session, campaign_id=endpoint.campaign_id):
            outbox.enqueue(
                session,
                kind=DISABLED_KIND,
                payload={"endpoint_id": endpoint_id, "user_id": user.id},
                dedup_key=outbox.dedup_key(
                    DISABLED_KIND, endpoint_id, now.isoformat(), user.id or 0
                ),
                recipient=user.email,
            )
    return list(switched_off)
