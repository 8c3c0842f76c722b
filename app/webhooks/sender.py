"""The worker's delivery of webhooks: each event one signed HTTP POST, in order per subject.

The outbox worker hands this sender the "webhook" messages of each batch it claims (SENDERS in
app/email/service.py) and records what it reports, as it does for e-mail: delivered, retried
with the outbox's backoff (OUTBOX_RETRY_BASE_SECONDS, doubling, capped at an hour) until
OUTBOX_MAX_ATTEMPTS, deferred, or dropped.

Order: an endpoint gets the events of one subject (a signature, a donation, a letter, a
petition) in the order they were emitted. An event is sent only when no earlier event of the
same endpoint and subject is still on its way; otherwise it is deferred (no attempt spent)
until that one is due. Events of a subject claimed together go one after the other, and the
first failure defers the rest. Events of different subjects or endpoints go in parallel.

Each attempt is signed per Standard Webhooks (`webhook-id`, the same on every retry;
`webhook-timestamp`, the attempt's time; `webhook-signature`, v1 HMAC-SHA256 by the
`standardwebhooks` package), goes to an address checked to be public at that moment (see
addresses.py), follows no redirect, and counts as delivered on a 2xx answer within
WEBHOOK_TIMEOUT_SECONDS. Delivery is at least once: a worker that dies after the POST and
before recording it sends the event again, with the same webhook-id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import Session
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.db import utcnow
from app.email.outbox import Claimed
from app.email.service import Outcome, sender
from app.webhooks import addresses
from app.webhooks import service as webhook_service
from app.webhooks.service import Attempt, Queued

log = logging.getLogger(__name__)

USER_AGENT = "Chorus-Webhooks/1"


def _plan(
    claims: list[Claimed], settings: Settings, engine: Engine
) -> tuple[list[list[tuple[Claimed, Queued]]], list[Outcome], list[int]]:
    """Which claimed events to send now, in chains of one endpoint and subject each (in order),
    and the outcomes of the others: deferred behind an earlier event, or dropped.
    -> (chains, outcomes, outbox ids of dropped events)"""
    with Session(engine) as session:
        found = webhook_service.queued(session, settings, outbox_ids=[c.id for c in claims])
        subjects = {(q.endpoint_id, q.subject) for q in found.values()}
        waiting = webhook_service.waiting(
            session, subjects=subjects, up_to=max(c.id for c in claims)
        )
    outcomes: list[Outcome] = []
    dropped: list[int] = []
    groups: dict[tuple[int, str], list[tuple[Claimed, Queued]]] = {}
    for claim in claims:
        event = found.get(claim.id)
        if event is None:  # its endpoint was deleted or switched off
            outcomes.append(Outcome(claim))
            dropped.append(claim.id)
        else:
            groups.setdefault((event.endpoint_id, event.subject), []).append((claim, event))
    soon = utcnow() + timedelta(seconds=settings.WORKER_POLL_SECONDS)
    chains: list[list[tuple[Claimed, Queued]]] = []
    for key, members in groups.items():
        members.sort(key=lambda member: member[0].id)
        ours = {claim.id for claim, _ in members}
        before = waiting.get(key, [])
        # The chain: our events up to the first earlier one that is not ours (another worker's,
        # or waiting to retry), in the order they were emitted.
        free = set()
        blocker: datetime | None = None
        for outbox_id, due in before:
            if outbox_id not in ours:
                blocker = due
                break
            free.add(outbox_id)
        chain = [member for member in members if member[0].id in free]
        if chain:
            chains.append(chain)
        later = max(blocker, soon) if blocker is not None else soon
        outcomes.extend(
            Outcome(claim, not_before=later) for claim, _ in members if claim.id not in free
        )
    return chains, outcomes, dropped


def _body(event: Queued) -> str:
    return json.dumps(event.body, ensure_ascii=False, separators=(",", ":"))


def signed_headers(event: Queued, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt at `at`."""
    assert event.secret is not None
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(event.secret).sign(event.message_id, at, body),
    }


@functools.cache
def _tls() -> ssl.SSLContext:
    """The certificates every client of this process checks against (certifi's, as httpx
    loads them by default). Loaded once: httpx loads the bundle for every client it makes,
    which was a quarter of a worker's CPU delivering webhooks (py-spy, bench/webhooks.py)."""
    return httpx.create_ssl_context(trust_env=False)


class _Clients:
    """One HTTP client per endpoint for a batch: its connections are reused only for that
    endpoint's own host, so a TLS session made for one name never carries another's request."""

    def __init__(self, stack: AsyncExitStack, settings: Settings) -> None:
        self.stack, self.settings = stack, settings
        self.by_endpoint: dict[int, httpx.AsyncClient] = {}

    async def get(self, endpoint_id: int) -> httpx.AsyncClient:
        client = self.by_endpoint.get(endpoint_id)
        if client is None:
            client = await self.stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=self.settings.WEBHOOK_TIMEOUT_SECONDS,
                    follow_redirects=False,
                    trust_env=False,  # no proxy from the environment: it would skip the checks
                    verify=_tls(),
                )
            )
            self.by_endpoint[endpoint_id] = client
        return client


async def _post(
    client: httpx.AsyncClient, event: Queued, settings: Settings
) -> tuple[int | None, str | None]:
    """One attempt. -> (the HTTP status, if any answer came; why it failed, None if delivered)"""
    if event.secret is None:
        return None, (
            "the endpoint's secret cannot be read: SECRET_KEY changed without the old key in "
            "SECRET_KEY_FALLBACKS; delete the endpoint and register it again"
        )
    try:
        destination = await addresses.resolve(event.url, settings)
    except addresses.Refused as exc:
        return None, f"refused: {exc}"
    body = _body(event)
    headers = signed_headers(event, body, utcnow())
    headers["host"] = destination.host_header
    extensions = {"sni_hostname": destination.server_name} if destination.server_name else {}
    try:
        async with client.stream(
            "POST", destination.url, content=body.encode(), headers=headers, extensions=extensions
        ) as response:
            status = response.status_code
    except httpx.TimeoutException:
        return None, f"no answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:2000]
    if 200 <= status < 300:
        return status, None
    if 300 <= status < 400:
        return status, f"answered {status}: redirects are not followed; register the final URL"
    return status, f"answered {status}"


def _attempt(
    claim: Claimed,
    event: Queued,
    started: float,
    at: datetime,
    result: tuple[int | None, str | None],
) -> Attempt:
    return Attempt(
        outbox_id=claim.id,
        endpoint_id=event.endpoint_id,
        message_id=event.message_id,
        event=event.event,
        attempt=claim.attempts,
        attempted_at=at,
        status_code=result[0],
        error=result[1],
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def _run_chain(
    chain: list[tuple[Claimed, Queued]],
    clients: _Clients,
    settings: Settings,
    limit: asyncio.Semaphore,
) -> list[tuple[Claimed, Attempt | None]]:
    """Send a chain's events one after the other; after a failure the rest wait (None)."""
    done: list[tuple[Claimed, Attempt | None]] = []
    async with limit:
        for claim, event in chain:
            if done and (done[-1][1] is None or not done[-1][1].delivered):
                done.append((claim, None))
                continue
            client = await clients.get(event.endpoint_id)
            at, started = utcnow(), time.monotonic()
            result = await _post(client, event, settings)
            done.append((claim, _attempt(claim, event, started, at, result)))
    return done


def _outcomes(
    results: list[tuple[Claimed, Attempt | None]], settings: Settings
) -> Iterator[tuple[Outcome, bool]]:
    """Each result's outcome, and whether its event is finished (its row can go)."""
    soon = utcnow() + timedelta(seconds=settings.WORKER_POLL_SECONDS)
    for claim, attempt in results:
        if attempt is None:
            yield Outcome(claim, not_before=soon), False
        elif attempt.delivered:
            yield Outcome(claim, sent=True), True
        else:
            last = claim.attempts >= settings.OUTBOX_MAX_ATTEMPTS  # the worker gives up then
            yield Outcome(claim, error=attempt.error), last


@sender(webhook_service.KIND)
async def deliver(claims: list[Claimed], settings: Settings, engine: Engine) -> list[Outcome]:
    """Deliver a batch's webhook events (see the module's docstring)."""
    chains, outcomes, finished = await asyncio.to_thread(_plan, claims, settings, engine)
    limit = asyncio.Semaphore(settings.WORKER_CONCURRENCY)
    async with AsyncExitStack() as stack:
        clients = _Clients(stack, settings)
        runs = await asyncio.gather(
            *(_run_chain(chain, clients, settings, limit) for chain in chains)
        )
    results = [result for run in runs for result in run]
    for outcome, done in _outcomes(results, settings):
        outcomes.append(outcome)
        if done:
            finished.append(outcome.claim.id)
    tried = [attempt for _, attempt in results if attempt is not None]
    switched_off = await asyncio.to_thread(_record, engine, settings, tried, finished)
    for endpoint_id in switched_off:
        log.warning("webhook endpoint %s failed for too long and was switched off", endpoint_id)
    return outcomes


def _record(
    engine: Engine, settings: Settings, tried: list[Attempt], finished: list[int]
) -> list[int]:
    with Session(engine) as session:
        switched_off = webhook_service.record_attempts(
            session, settings, tried=tried, finished=finished
        )
        session.commit()
    return switched_off
