"""Abuse controls for signing: hashed IPs, rate limits, allow/block lists, CAPTCHA, reports
and bulk invalidation. Nothing here tells a client it was caught: held signatures get the
usual answer (as the UK Parliament's e-petitions does), so bots learn nothing."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import bindparam, case, func, text
from sqlmodel import Session, col, select

from app.abuse.models import AbuseRule, InvalidateRequest, RuleAction, RuleKind, SourceCount
from app.audit import service as audit_service
from app.auth.models import User
from app.core import cache
from app.core.addresses import normalise_email
from app.core.clientip import ip_hash as ip_hash  # (re-exported: how other domains hash IPs)
from app.core.clientip import ip_hashes as ip_hashes
from app.core.config import Settings
from app.core.db import UTCDateTime, set_for_transaction, utcnow
from app.core.errors import FieldError, ProblemError, field_problem
from app.petitions.models import Petition
from app.signatures import lifecycle
from app.signatures.models import Signature, SignatureStatus

log = logging.getLogger(__name__)

VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
}


@dataclass(frozen=True)
class SigningSource:
    """Where a signature came from, as far as the abuse controls care."""

    ip: str | None = None
    honeypot: bool = False  # the form's hidden field was filled in: a bot


def _rules(session: Session, *, cache_seconds: float) -> dict[tuple[str, str], str]:
    """Every allow/block rule as {(kind, value): action}, reused for `cache_seconds`."""

    def load() -> dict[tuple[str, str], str]:
        rows = session.execute(select(AbuseRule.kind, AbuseRule.value, AbuseRule.action))
        return {(str(kind), value): str(action) for kind, value, action in rows}

    return cache.cached(("abuse-rules",), cache_seconds, load)


def _window_counts(
    session: Session,
    wanted: dict[str, tuple[Any, dict[str, tuple[str, ...]], int]],
    *,
    now: datetime,
) -> dict[tuple[str, str], list[int]]:
    """Signatures from each source in the last minute and hour, for every source of a batch in
    one statement: {column key: (column, {source: the values it is stored under}, per_hour)}
    -> {(column key, source): [minute, hour]}. A source is stored under several values when
    SECRET_KEY was rotated (its hashes under the current and former keys).

    Each source is an index range scan on (source, created_at) that counts no further than
    its hourly limit (a bot's thousands cost no more than its limit), so a batch of a surge's
    signers from 200 addresses is one round trip, not 200.
    """
    if not wanted:
        return {}
    for column, _, _ in wanted.values():  # (SQL text naming a column of ours)
        assert column.name in Signature.__table__.c  # type: ignore[attr-defined]
    keys = list(wanted)
    rows = (
        _window_rows_postgres(session, wanted, now=now)
        if session.get_bind().dialect.name == "postgresql"
        else _window_rows_portable(session, wanted, now=now)
    )
    return {(keys[source], value): [int(minute), int(hour)] for source, value, minute, hour in rows}


def _window_rows_portable(
    session: Session,
    wanted: dict[str, tuple[Any, dict[str, tuple[str, ...]], int]],
    *,
    now: datetime,
) -> Any:
    """_window_counts' rows (source's index in `wanted`, source, minute, hour) on SQLite."""
    branches: list[str] = []
    params: dict[str, Any] = {}
    for n, (column, groups, per_hour) in enumerate(wanted.values()):
        # SQL text: json_each ... has no portable Core form.
        capped = (
            f"SELECT created_at FROM signature"  # noqa: S608
            f" WHERE {column.name} IN (SELECT m.value FROM json_each(g.value) AS m)"
            f" AND created_at >= :hour_ago LIMIT :cap_{n}"
        )
        branches.append(
            f"SELECT {n} AS source, g.key,"  # noqa: S608
            f" (SELECT count(*) FROM ({capped}) AS r WHERE r.created_at >= :minute_ago),"
            f" (SELECT count(*) FROM ({capped}) AS r)"
            f" FROM json_each(:groups_{n}) AS g"
        )
        params[f"groups_{n}"] = json.dumps({key: list(values) for key, values in groups.items()})
        params[f"cap_{n}"] = per_hour + 1
    statement = text(" UNION ALL ".join(branches)).bindparams(
        bindparam("hour_ago", now - timedelta(hours=1), type_=UTCDateTime),
        bindparam("minute_ago", now - timedelta(minutes=1), type_=UTCDateTime),
    )
    return session.execute(statement, params)


@functools.cache
def _window_sql_postgres(columns: tuple[str, ...]) -> str:
    """The statement counting the windows of `columns`' sources (see _window_rows_postgres),
    written once per set of columns: the text of every batch's statement is the same."""
    return " UNION ALL ".join(
        f"SELECT {n}, v.key, count(*) FILTER (WHERE r.created_at >= %(minute_ago)s), count(*)"  # noqa: S608
        f" FROM json_to_recordset(CAST(%(sources_{n})s AS json)) AS v(key text, value text)"
        f" CROSS JOIN LATERAL ("
        f"SELECT created_at FROM signature WHERE {name} = v.value"
        f" AND created_at >= %(hour_ago)s LIMIT %(cap_{n})s) AS r GROUP BY v.key"
        for n, name in enumerate(columns)
    )


def _window_rows_postgres(
    session: Session,
    wanted: dict[str, tuple[Any, dict[str, tuple[str, ...]], int]],
    *,
    now: datetime,
) -> Any:
    """_window_counts' rows on PostgreSQL: one row per stored value of each source (a JSON parameter
    per column), each an index lookup counting up to the source's hourly limit; a source
    stored under several values adds theirs up (a sum of counts capped at the limit is at the
    limit when the whole is).

    One statement text for every batch, passed to the driver as it is: none of SQLAlchemy's
    per-statement work, none of a text built per batch (half the CPU the signing batch spent
    in Python was building, compiling and converting the statements it sent)."""
    params: dict[str, Any] = {
        "hour_ago": now - timedelta(hours=1),
        "minute_ago": now - timedelta(minutes=1),
    }
    for n, (_, groups, per_hour) in enumerate(wanted.values()):
        params[f"sources_{n}"] = json.dumps(
            [{"key": key, "value": value} for key, values in groups.items() for value in values],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        params[f"cap_{n}"] = per_hour + 1
    # For this transaction: plans made for this batch's sources, never a prepared statement's
    # generic plan (the driver prepares a statement it has run five times: a generic plan made
    # while the table was nearly empty, a sequential scan per source, stayed in use as a surge
    # grew the table: 16,763 sequential scans, 7,641 rows read per signature, in 15 seconds),
    # and no JIT compilation (once the table holds a few hundred thousand signatures a big
    # batch's estimate can pass jit_above_cost, and compiling the statement to machine code
    # took 8 ms of PostgreSQL's CPU for a query that runs in 0.5 ms).
    set_for_transaction(session, jit="off", plan_cache_mode="force_custom_plan")
    sql = _window_sql_postgres(tuple(column.name for column, _, _ in wanted.values()))
    return session.connection().exec_driver_sql(sql, params)


@dataclass(frozen=True)
class HoldCheck:
    """One signature to check: where it came from and who signs."""

    source: SigningSource
    ip_digest: str | None  # what the signature stores (clientip.ip_hash)
    domain: str
    email_normalised: str
    # Every hash the source may be stored under (clientip.ip_hashes), ip_digest first.
    ip_digests: tuple[str, ...] = ()


# The columns the rate limits count by (columns of the table: a class attribute's access runs
# SQLAlchemy's descriptor, twice per signature and limit).
_IP_HASH = Signature.__table__.c.ip_hash  # type: ignore[attr-defined]
_EMAIL_DOMAIN = Signature.__table__.c.email_domain  # type: ignore[attr-defined]


def hold_reasons(
    session: Session, *, settings: Settings, checks: list[HoldCheck]
) -> list[str | None]:
    """For each signature of a batch, why it should be held instead of confirmed (or None).

    What the honeypot and the allow/block rules say comes first; every other signature counts
    towards its source's limits (its address's, and its domain's unless exempt). Each source's
    recent signatures are counted once per batch, all in one statement; the batch's own
    signatures count towards the limits of those after them, as if they had come one by one.
    """
    rules = _rules(session, cache_seconds=settings.CACHE_SECONDS)
    exempt = set(settings.RATE_LIMIT_DOMAIN_EXEMPT)
    ruled: list[str | None] = []  # a reason, _ALLOWED, or None: to be counted
    ips: dict[str, tuple[str, ...]] = {}
    domains: dict[str, tuple[str, ...]] = {}
    for check in checks:
        verdict = _ruled(check, rules)
        ruled.append(verdict)
        if verdict is None:
            digests = _digests(check)
            if digests:
                ips[digests[0]] = digests
            if check.domain not in exempt:
                domains[check.domain] = (check.domain,)
    wanted: dict[str, tuple[Any, dict[str, tuple[str, ...]], int]] = {}
    if ips:
        wanted[_IP_HASH.key] = (_IP_HASH, ips, settings.RATE_LIMIT_IP_PER_HOUR)
    if domains:
        wanted[_EMAIL_DOMAIN.key] = (_EMAIL_DOMAIN, domains, settings.RATE_LIMIT_DOMAIN_PER_HOUR)
    windows = _window_counts(session, wanted, now=utcnow())

    reasons: list[str | None] = []
    for check, verdict in zip(checks, ruled, strict=True):
        if verdict is not None:
            reasons.append(None if verdict == _ALLOWED else verdict)
            continue
        reason = None
        digests = _digests(check)
        if digests:
            ip = windows.setdefault((_IP_HASH.key, digests[0]), [0, 0])
            if (
                ip[0] >= settings.RATE_LIMIT_IP_PER_MINUTE
                or ip[1] >= settings.RATE_LIMIT_IP_PER_HOUR
            ):
                reason = "rate-ip"
            ip[0], ip[1] = ip[0] + 1, ip[1] + 1  # this signature is stored, held or not
        if check.domain not in exempt:
            domain = windows.setdefault((_EMAIL_DOMAIN.key, check.domain), [0, 0])
            if reason is None and (
                domain[0] >= settings.RATE_LIMIT_DOMAIN_PER_MINUTE
                or domain[1] >= settings.RATE_LIMIT_DOMAIN_PER_HOUR
            ):
                reason = "rate-domain"
            domain[0], domain[1] = domain[0] + 1, domain[1] + 1
        reasons.append(reason)
    return reasons


_ALLOWED = "allowed"  # (_ruled: an allow rule's verdict, which holds nothing)


def _digests(check: HoldCheck) -> tuple[str, ...]:
    return check.ip_digests or ((check.ip_digest,) if check.ip_digest else ())


def _ruled(check: HoldCheck, rules: dict[tuple[str, str], str]) -> str | None:
    """What the honeypot and the rules decide of a signature: a reason to hold it, _ALLOWED,
    or None when the rate limits decide."""
    if check.source.honeypot:
        return "honeypot"
    actions = _rule_actions(rules, _digests(check), check.email_normalised)
    if RuleAction.block in actions:
        return "blocked"
    if RuleAction.allow in actions:
        return _ALLOWED
    return None


def _rule_actions(
    rules: dict[tuple[str, str], str], ip_digests: Sequence[str], email_normalised: str
) -> set[str | None]:
    """What the allow/block rules say of this IP (under any of its hashes), this address and
    its domain."""
    actions = {
        rules.get((RuleKind.domain, email_normalised.rpartition("@")[2])),
        rules.get((RuleKind.email, email_normalised)),
    }
    for digest in ip_digests:
        actions.add(rules.get((RuleKind.ip, digest)))
    return actions


def blocked(
    session: Session, *, settings: Settings, ip_digests: Sequence[str], email_normalised: str
) -> bool:
    """Whether an organiser blocked this IP (under any of its hashes, clientip.ip_hashes),
    this address or its domain (allow lists aside)."""
    rules = _rules(session, cache_seconds=settings.CACHE_SECONDS)
    return RuleAction.block in _rule_actions(rules, ip_digests, email_normalised)


def check_captcha(settings: Settings, *, token: str | None, ip: str | None) -> None:
    """Verify a CAPTCHA answer with the provider when CAPTCHA is on; 422 when it fails."""
    if not settings.CAPTCHA_PROVIDER:
        return
    ok = False
    if token:
        url = settings.CAPTCHA_VERIFY_URL or VERIFY_URLS[settings.CAPTCHA_PROVIDER]
        data = {"secret": settings.CAPTCHA_SECRET.get_secret_value(), "response": token}
        if ip:
            data["remoteip"] = ip
        try:
            answer = httpx.post(url, data=data, timeout=5)
            ok = answer.status_code == 200 and answer.json().get("success") is True
        except (httpx.HTTPError, ValueError) as exc:
            # The provider is down: let people sign (held signatures are worse than none).
            log.error("CAPTCHA provider unreachable, accepting: %s", exc)
            ok = True
    if not ok:
        message = "Please complete the check that you are not a robot"
        raise field_problem("captcha_token", "captcha_failed", message, detail=message)


# --- reports and clean-up (organisers) ---------------------------------------------------------


def trending(
    session: Session, *, petition: Petition, minutes: int, top: int = 20
) -> tuple[list[SourceCount], list[SourceCount]]:
    """The IP hashes and e-mail domains that signed this petition most in the last minutes."""
    since = utcnow() - timedelta(minutes=minutes)
    held = func.sum(case((col(Signature.status) == SignatureStatus.suspect, 1), else_=0))
    out: list[list[SourceCount]] = []
    for column in (col(Signature.ip_hash), col(Signature.email_domain)):
        rows = session.execute(
            select(column, func.count(), held)
            .where(
                Signature.petition_id == petition.id,
                col(Signature.created_at) >= since,
                column.is_not(None),
            )
            .group_by(column)
            .order_by(func.count().desc(), column)
            .limit(top)
        )
        out.append([SourceCount(source=s, signatures=int(n), held=int(h or 0)) for s, n, h in rows])
    return out[0], out[1]


def invalidate(
    session: Session,
    *,
    petition: Petition,
    settings: Settings,
    ip: str | None = None,
    ip_digest: str | None = None,
    domain: str | None = None,
    country: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    held_only: bool = False,
) -> tuple[int, int]:
    """Invalidate the petition's matching signatures; confirmed ones stop counting.

    Returns (invalidated, uncounted); see lifecycle.invalidate. 422 when nothing narrows the
    selection (that would be every signature of the petition) or the IP is not one.
    """
    assert petition.id is not None
    digests: tuple[str, ...] = ()
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ProblemError(422, "validation", "Invalid IP address") from None
        digests = ip_hashes(settings, ip)  # its network (an IPv6 /64), under every key in use
    elif ip_digest:
        digests = (ip_digest,)
    selection = lifecycle.Selection(
        petition_id=petition.id,
        ip_digests=digests,
        domain=domain.strip().lower() if domain else None,
        country=country.upper() if country else None,
        created_from=created_from,
        created_to=created_to,
        held_only=held_only,
    )
    if selection == lifecycle.Selection(petition_id=petition.id):
        raise ProblemError(
            422,
            "validation",
            "Say which signatures to invalidate",
            "Give at least one of ip, ip_hash, domain, country, created_from, "
            "created_to or held_only.",
        )
    return lifecycle.invalidate(session, selection=selection, settings=settings)


def held_reasons(session: Session, *, petition: Petition) -> Counter[str]:
    rows = session.execute(
        select(col(Signature.held_reason), func.count())
        .where(Signature.petition_id == petition.id, Signature.status == SignatureStatus.suspect)
        .group_by(col(Signature.held_reason))
    )
    return Counter({str(reason): int(n) for reason, n in rows})


def normalise_rule_value(settings: Settings, kind: RuleKind, value: str) -> str:
    """What a rule stores: IPs as their HMAC (like signatures), domains and addresses lower."""
    value = value.strip()
    if kind == RuleKind.ip:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ProblemError(
                422,
                "validation",
                "Invalid IP address",
                errors=[FieldError(field="value", type="ip_invalid", message="Not an IP address")],
            ) from None
        return ip_hash(settings, value)
    if kind == RuleKind.email:
        if "@" not in value:
            raise ProblemError(
                422,
                "validation",
                "Invalid e-mail address",
                errors=[
                    FieldError(field="value", type="email_invalid", message="Not an e-mail address")
                ],
            )
        return normalise_email(value)
    return value.lower().lstrip("@")


def release(
    session: Session, *, petition: Petition, ip_digest: str | None = None, domain: str | None = None
) -> int:
    """Release held signatures (false alarms): each becomes pending and gets its confirmation
    e-mail. Returns how many were released."""
    assert petition.id is not None
    selection = lifecycle.Selection(
        petition_id=petition.id,
        ip_digests=(ip_digest,) if ip_digest else (),
        domain=domain.strip().lower() if domain else None,
    )
    return lifecycle.release(session, selection=selection)


def invalidate_for(
    session: Session, *, petition: Petition, settings: Settings, user: User, body: InvalidateRequest
) -> tuple[int, int]:
    """`invalidate` as a person asks for it (the admin API and the console), audited."""
    done, uncounted = invalidate(
        session,
        petition=petition,
        settings=settings,
        ip=body.ip,
        ip_digest=body.ip_hash,
        domain=body.domain,
        country=body.country,
        created_from=body.created_from,
        created_to=body.created_to,
        held_only=body.held_only,
    )
    audit_service.record(
        session,
        actor=user,
        action="signatures.invalidate",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={
            **body.model_dump(mode="json", exclude={"ip"}, exclude_none=True),
            "ip_given": body.ip is not None,
            "invalidated": done,
            "uncounted": uncounted,
        },
    )
    return done, uncounted


def release_for(
    session: Session,
    *,
    petition: Petition,
    user: User,
    ip_digest: str | None = None,
    domain: str | None = None,
) -> int:
    """`release` as a person asks for it (the admin API and the console), audited."""
    released = release(session, petition=petition, ip_digest=ip_digest, domain=domain)
    given = {k: v for k, v in (("ip_hash", ip_digest), ("domain", domain)) if v is not None}
    audit_service.record(
        session,
        actor=user,
        action="signatures.release",
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={**given, "released": released},
    )
    return released
