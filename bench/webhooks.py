"""What webhooks cost signing (issue #15: no more than 5 % added), measured in the same run.

Signing records a pending signature and emits no event; confirming it emits
`signature.confirmed`, which is queued through the outbox in the confirmation's transaction for
every endpoint of the campaign that listens, and POSTed by `chorus worker` on the same two
cores. So each round signs (bench/sign.lua at 16 clients, checked like every signing phase) and
then confirms (bench/confirm.lua at 16 clients: each request a different pending signature's
confirmation token), with the campaign's endpoint switched on (A) or off (B), in the order
A B B A (twice over in a full run) so that a shared machine's drift falls on both alike.

The endpoint is bench/receiver.py on 127.0.0.1, registered with scope `full` through the
webhooks service as an organiser would (development settings for that one call: production
accepts https URLs only, and a local receiver has no certificate the worker trusts; delivery
itself checks the address, which WEBHOOK_ALLOW_LOOPBACK lets be loopback). A round with the
endpoint on ends when the receiver has every confirmation's event, so the worker's deliveries
fall inside the round they belong to; each is then checked with the `standardwebhooks` library
(valid signature, none twice), and no event may arrive for a confirmation made while it was off.

Figures, with the endpoint on and off: signing and confirming rates, and the CPU per
signature signed (while wrk signs) and per signature confirmed (until its event is in) of
Chorus's processes and their PostgreSQL backends, read from /proc: the cost itself, steadier
than a rate on a shared machine. The target (at most 5 % added) is checked on each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from sqlmodel import Session, select
from standardwebhooks import Webhook, WebhookVerificationError

from app.auth.models import User
from app.campaigns.models import Campaign
from app.core.db import make_engine
from app.demo import content
from app.petitions.models import Petition
from app.signatures.service import confirmation_token
from app.webhooks import service as webhook_service
from app.webhooks.models import Scope, WebhookCreate, WebhookEndpoint
from bench import admin, cpu
from bench.receiver import Receiver

if TYPE_CHECKING:
    from bench.bench import Bench, Load, SigningPhase

CLIENTS = 16
CONFIRM_SCRIPT = Path(__file__).with_name("confirm.lua")
TOKENS = Path("/tmp") / "chorus-bench-tokens.txt"  # noqa: S108 (a scratch file)
DEADLINE_S = 120  # every event of a round at the receiver within this of the round's end
ADMIN_EMAIL = "webhooks-bench@example.org"
TARGET = 0.05
Row = tuple[str, str, str, str, str]


@dataclass
class Round:
    """One round: signing, then confirming, with the endpoint on or off."""

    endpoint_on: bool
    signing: SigningPhase
    confirming: Load
    confirmed: list[int] = field(default_factory=list)  # signature ids confirmed in the round
    cpu_seconds: float = 0.0  # while confirming, until the round's events were in
    signing_cpu_seconds: float = 0.0  # while wrk signed
    last_event_after_s: float | None = None  # the round's last event, after wrk's end


@dataclass
class Cost:
    rounds: list[Round] = field(default_factory=list)
    expected: int = 0  # events due: confirmations made while the endpoint was on
    delivered: int = 0  # of those, at the receiver, with a valid signature
    invalid: int = 0  # deliveries whose signature did not verify
    twice: int = 0  # webhook-ids that arrived more than once
    stray: int = 0  # events for confirmations made while the endpoint was off

    def rate(self, on: bool, kind: str) -> float:
        loads = [r.confirming if kind == "confirm" else r.signing.load for r in self.rounds]
        chosen = [load for load, r in zip(loads, self.rounds, strict=True) if r.endpoint_on == on]
        seconds = sum(load.seconds for load in chosen)
        return sum(load.accepted for load in chosen) / seconds if seconds else 0.0

    def cpu_ms(self, on: bool, kind: str) -> float:
        """CPU (ms) per signature signed (kind "sign") or confirmed ("confirm")."""
        chosen = [r for r in self.rounds if r.endpoint_on == on]
        if kind == "sign":
            done = sum(r.signing.load.accepted for r in chosen)
            cpu = sum(r.signing_cpu_seconds for r in chosen)
        else:
            done = sum(len(r.confirmed) for r in chosen)
            cpu = sum(r.cpu_seconds for r in chosen)
        return 1000 * cpu / done if done else 0.0

    def added(self, kind: str) -> float:
        """What the endpoint adds to the CPU of a signature signed ("sign"), confirmed
        ("confirm") or both ("flow"): on / off - 1."""
        kinds = ("sign", "confirm") if kind == "flow" else (kind,)
        on = sum(self.cpu_ms(True, k) for k in kinds)
        off = sum(self.cpu_ms(False, k) for k in kinds)
        return on / off - 1 if off else float("inf")


# --- the rounds -----------------------------------------------------------------------------------


class _Endpoint:
    """The campaign's endpoint, switched on and off through the webhooks service."""

    def __init__(self, bench: Bench, url: str) -> None:
        admin.create_admin(bench.env, ADMIN_EMAIL)
        self.engine = make_engine(bench.database, pool_size=1)
        # Production insists on https at registration (see the module's docstring).
        registering = admin.settings(
            bench.env, ENVIRONMENT="development", WEBHOOK_ALLOW_LOOPBACK=True
        )
        with Session(self.engine) as session:
            user = session.exec(select(User).where(User.email == ADMIN_EMAIL)).one()
            petition = session.exec(
                select(Petition).where(Petition.slug == content.PETITION["slug"])
            ).one()
            campaign = session.get(Campaign, petition.campaign_id)
            assert campaign is not None and user.id is not None
            self.user_id = user.id
            created = webhook_service.create(
                session,
                actor=user,
                campaign=campaign,
                data=WebhookCreate(
                    url=url,
                    events=["signature.confirmed", "signature.withdrawn"],
                    scope=Scope.full,
                ),
                settings=registering,
            )
            session.commit()
        self.id = created.id
        self.webhook = Webhook(created.secret)

    def switch(self, on: bool) -> None:
        with Session(self.engine) as session:
            user = session.get(User, self.user_id)
            endpoint = session.get(WebhookEndpoint, self.id)
            assert user is not None and endpoint is not None
            change = webhook_service.enable if on else webhook_service.disable
            change(session, actor=user, endpoint=endpoint)
            session.commit()


def _write_tokens(bench: Bench, conn: psycopg.Connection[tuple[int]]) -> list[int]:
    """A confirmation token per pending signature, oldest first, into TOKENS. -> their ids."""
    ids = [
        signature_id
        for (signature_id,) in conn.execute(
            "SELECT id FROM signature WHERE status = 'pending' ORDER BY id"
        )
    ]
    settings = admin.settings(bench.env)
    TOKENS.write_text(
        "".join(confirmation_token(settings, signature_id=i) + "\n" for i in ids),
        encoding="ascii",
    )
    return ids


def _confirmed(conn: psycopg.Connection[tuple[int]], ids: list[int]) -> list[int]:
    """Which of `ids` are confirmed, once the count stops changing (requests in flight at wrk's
    deadline still commit)."""
    previous: list[int] | None = None
    while True:
        found = [
            signature_id
            for (signature_id,) in conn.execute(
                "SELECT id FROM signature WHERE id = ANY(%s) AND status = 'confirmed'", (ids,)
            )
        ]
        if previous is not None and len(found) == len(previous):
            return found
        previous = found
        time.sleep(0.3)


def _confirm_round(
    bench: Bench,
    wrk: Callable[..., Load],
    conn: psycopg.Connection[tuple[int]],
    receiver: Receiver,
    round_: Round,
    seconds: int,
) -> None:
    """Confirm for a round, count its CPU until its events are in (endpoint on), print it."""
    ids = _write_tokens(bench, conn)
    mark = len(receiver.deliveries)
    before = cpu.ticks(conn)
    round_.confirming = wrk(
        f"{bench.base}/api/v1/signatures/confirm",
        connections=CLIENTS,
        seconds=seconds,
        script=CONFIRM_SCRIPT,
        BENCH_TOKENS=str(TOKENS),
        BENCH_THREADS=str(min(2, CLIENTS)),
    )
    ended = time.monotonic()
    round_.confirmed = _confirmed(conn, ids)
    if round_.endpoint_on:
        while len(receiver.deliveries) - mark < len(round_.confirmed):
            if time.monotonic() > ended + DEADLINE_S:
                break
            time.sleep(0.05)
        arrived = receiver.deliveries[mark:]
        if arrived:
            round_.last_event_after_s = max(0.0, arrived[-1].at - ended)
    round_.cpu_seconds = sum(cpu.seconds(before, cpu.ticks(conn), cpu.CHORUS).values())
    TOKENS.unlink()
    load = round_.confirming
    events = (
        f"  events {len(receiver.deliveries) - mark}/{len(round_.confirmed)}"
        + (
            f" (last {round_.last_event_after_s:.1f} s after the end)"
            if round_.last_event_after_s is not None
            else ""
        )
        if round_.endpoint_on
        else ""
    )
    cpu_ms = 1000 * round_.cpu_seconds / len(round_.confirmed) if round_.confirmed else 0.0
    print(
        f"  {'endpoint ' + ('on' if round_.endpoint_on else 'off') + ': confirming':<28} "
        f"{load.rate:>8.0f} /s  p50 {load.p50_ms:6.1f} ms  p99 {load.p99_ms:6.1f} ms  "
        f"errors {load.errors + load.other}  confirmed {len(round_.confirmed)}/{load.accepted}  "
        f"CPU {cpu_ms:.2f} ms each{events}",
        flush=True,
    )


class _Events:
    """What reached the receiver, checked with the `standardwebhooks` library soon after it
    arrived (the library refuses a timestamp older than five minutes)."""

    def __init__(self, receiver: Receiver, webhook: Webhook) -> None:
        self.receiver, self.webhook = receiver, webhook
        self.checked = 0  # deliveries checked so far
        self.message_ids: set[str] = set()
        self.signature_ids: set[int] = set()

    def check(self, cost: Cost) -> None:
        """Check what arrived since the last call: valid, once."""
        arrived = self.receiver.deliveries[self.checked :]
        self.checked += len(arrived)
        for delivery in arrived:
            message_id = delivery.headers.get("webhook-id", "")
            if message_id in self.message_ids:
                cost.twice += 1
                continue
            self.message_ids.add(message_id)
            try:
                payload = self.webhook.verify(delivery.body, delivery.headers)
            except WebhookVerificationError:
                cost.invalid += 1
                continue
            self.signature_ids.add(int(payload["data"]["signature"]["id"]))

    def count(self, cost: Cost) -> None:
        """Events due (confirmations while on), delivered, and stray (confirmations while off)."""
        self.check(cost)
        on = {i for r in cost.rounds if r.endpoint_on for i in r.confirmed}
        off = {i for r in cost.rounds if not r.endpoint_on for i in r.confirmed}
        cost.expected = len(on)
        cost.delivered = len(on & self.signature_ids)
        cost.stray = len(off & self.signature_ids)


def measure(bench: Bench, wrk: Callable[..., Load]) -> Cost:
    """The interleaved rounds, while Chorus runs (bench.chorus())."""
    receiver = Receiver()
    receiver.start()
    cost = Cost()
    try:
        endpoint = _Endpoint(bench, receiver.url)
        events = _Events(receiver, endpoint.webhook)
        seconds = max(5, bench.args.seconds // 4)
        order = "ABBA" if bench.args.quick else "ABBAABBA"
        print(
            f"Webhooks: signing, then confirming, {seconds} s each at {CLIENTS} clients, "
            f"the endpoint on (A) and off (B): {' '.join(order)}",
            flush=True,
        )
        with psycopg.connect(bench.database, autocommit=True) as conn:
            for letter in order:
                on = letter == "A"
                endpoint.switch(on)
                bench.settle()
                before = cpu.ticks(conn)
                ran = bench.sign(bench.sign_url, CLIENTS, seconds)
                signing_cpu = sum(cpu.seconds(before, cpu.ticks(conn), cpu.CHORUS).values())
                name = f"endpoint {'on' if on else 'off'}: signing"
                signing = bench.signing_phase(name, CLIENTS, ran=ran)
                round_ = Round(on, signing, signing.load, signing_cpu_seconds=signing_cpu)
                _confirm_round(bench, wrk, conn, receiver, round_, seconds)
                cost.rounds.append(round_)
                events.check(cost)
            endpoint.switch(False)
        events.count(cost)
    finally:
        receiver.stop()
    return cost


# --- the report -----------------------------------------------------------------------------------


def rows(cost: Cost) -> list[Row]:
    """The results table's lines: the endpoint on, off, their ratio, the target."""

    def verdict(ok: bool) -> str:
        return "OK" if ok else "MISSED"

    lines: list[Row] = [
        ("Webhooks, 16 clients (endpoint on / off)", "on", "off", "ratio", "target (issue #15)")
    ]
    for kind, name in (("sign", "signing"), ("confirm", "confirming")):
        on, off = cost.rate(True, kind), cost.rate(False, kind)
        ratio = f"{on / off:.3f}" if off else ""
        lines.append((f"{name} /s", f"{on:,.0f}", f"{off:,.0f}", ratio, ""))
        on, off = cost.cpu_ms(True, kind), cost.cpu_ms(False, kind)
        added = cost.added(kind)
        lines.append(
            (
                f"{name}: CPU per signature (Chorus + PostgreSQL)",
                f"{on:.2f} ms",
                f"{off:.2f} ms",
                f"{added:+.1%}",
                f"<= +{TARGET:.0%}  {verdict(added <= TARGET)}",
            )
        )
    lines.append(("signed and confirmed: CPU added", f"{cost.added('flow'):+.1%}", "", "", ""))
    events_ok = cost.delivered == cost.expected and not (cost.invalid or cost.twice or cost.stray)
    lines.append(
        (
            "events delivered, signed, once; none while off",
            f"{cost.delivered} / {cost.expected}",
            "",
            "",
            f"all; {cost.invalid} invalid, {cost.twice} twice, {cost.stray} stray  "
            f"{verdict(events_ok)}",
        )
    )
    return lines
