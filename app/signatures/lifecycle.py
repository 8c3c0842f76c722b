"""What happens to a signature after it is recorded, in the campaigner's words.

A signature is recorded pending (or held as suspect by the abuse controls, app/signatures/
service.py); then its signer confirms it (it counts) or withdraws it (it stops counting), an
organiser invalidates it (a bot's) or releases it from hold (a false alarm), its signer stops
campaign updates, and retention anonymises it. Every such change to a `signature` row is made
here, and nowhere else:

- each moves a signature from the status it expects (UPDATE ... WHERE status = expected), so
  that of two changes racing for one signature (a confirmation and a withdrawal, two clicks)
  exactly one wins;
- the one that wins counts the signature in or out of the tallies (app/signatures/tally.py) in
  the same transaction, so a count never drifts from the statuses.

Callers check who may make the change (a manage link, an organiser's rights); these functions
flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, literal, update
from sqlmodel import Session, col, select

from app.core import metrics
from app.core.config import Settings
from app.core.db import utcnow
from app.email import outbox
from app.petitions.models import Petition
from app.signatures import tally
from app.signatures.models import Signature, SignatureStatus
from app.webhooks import payloads as webhook_payloads
from app.webhooks import service as webhook_service

# Signatures an organiser may invalidate: all but the ones already out of the count by other
# means (withdrawn by their signers, or invalidated before).
INVALIDATABLE = (SignatureStatus.suspect, SignatureStatus.pending, SignatureStatus.confirmed)
# Rows read per round while invalidating (each is then changed under its own status guard).
INVALIDATE_BATCH = 1000


_SIGNATURE = Signature.__table__  # type: ignore[attr-defined]
# Built once, run on the connection (Core): the ORM-enabled update built per confirmation
# cost several times the statement itself in Python.
_CONFIRM = (
    update(_SIGNATURE)
    .where(_SIGNATURE.c.id == bindparam("signature_id"))
    .where(_SIGNATURE.c.status == SignatureStatus.pending)
    .values(status=SignatureStatus.confirmed, confirmed_at=bindparam("confirmed_at"))
)


def confirm(session: Session, *, signature: Signature, settings: Settings) -> bool:
    """Confirm a pending signature: it counts from now on. False when it was no longer pending
    (a concurrent confirmation of the same link got there first, or it was withdrawn).
    `signature` is not refreshed (its status and confirmed_at are as read before)."""
    confirmed_at = utcnow()
    result = session.connection().execute(
        _CONFIRM, {"signature_id": signature.id, "confirmed_at": confirmed_at}
    )
    if result.rowcount != 1:
        return False
    metrics.after_commit(session, metrics.CONFIRMATIONS)
    tally.add_to_tallies(
        session, signature=signature, confirmed_at=confirmed_at, settings=settings, delta=1
    )
    return True


def withdraw(session: Session, *, signature: Signature, settings: Settings) -> bool:
    """Withdraw a signature at its signer's request; False when it was not pending or confirmed
    (withdrawn already, say).

    A pending signature just becomes withdrawn (it was never counted); a confirmed one is
    counted out of the tallies. The row stays, so the address cannot sign this petition again
    (signing again gets the "already signed" e-mail, whose manage link shows it withdrawn).
    `signature` is refreshed when it changed.
    """
    now = utcnow()

    def move(from_status: SignatureStatus) -> tuple[int, datetime | None] | None:
        row = session.execute(
            update(Signature)
            .where(col(Signature.id) == signature.id, col(Signature.status) == from_status)
            .values(status=SignatureStatus.withdrawn, withdrawn_at=now)
            .returning(col(Signature.id), col(Signature.confirmed_at))
            .execution_options(synchronize_session=False)
        ).first()
        return (row[0], row[1]) if row is not None else None

    # Pending first: the only way a signature's status moves on its own is pending ->
    # confirmed, so a confirmation that wins the race is seen by the second statement.
    withdrawn = move(SignatureStatus.pending) is not None
    counted_out = False
    if not withdrawn:
        was_confirmed = move(SignatureStatus.confirmed)
        if was_confirmed is not None:
            confirmed_at = was_confirmed[1]
            assert confirmed_at is not None  # set by every confirmation
            tally.add_to_tallies(
                session, signature=signature, confirmed_at=confirmed_at, settings=settings, delta=-1
            )
            withdrawn = counted_out = True
    if withdrawn:
        session.refresh(signature)
    if counted_out:  # (a pending one was never announced)
        _announce_withdrawal(session, signature)
    return withdrawn


def _announce_withdrawal(session: Session, signature: Signature) -> None:
    """`signature.withdrawn` to the campaign's webhooks, in the withdrawal's transaction."""
    petition = session.get(Petition, signature.petition_id)
    assert petition is not None and petition.id is not None
    webhook_service.emit(
        session,
        campaign_id=petition.campaign_id,
        event="signature.withdrawn",
        subject=f"signature:{signature.id}",
        data=webhook_payloads.signature(
            signature, petition, count=tally.confirmed_count(session, petition_id=petition.id)
        ),
    )


def stop_updates(session: Session, *, signature: Signature) -> bool:
    """No more campaign updates about this signature (its signer withdrew consent or
    unsubscribed); it still counts. False when it had no consent to withdraw. `signature` is
    refreshed when it changed."""
    changed = (
        session.execute(
            update(Signature)
            .where(col(Signature.id) == signature.id, col(Signature.consent_updates).is_(True))
            .values(consent_updates=False)
            .returning(col(Signature.id))
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )
    if changed:
        session.refresh(signature)
    return changed


@dataclass(frozen=True)
class Selection:
    """Which of a petition's signatures an organiser means: every field set narrows it."""

    petition_id: int
    ip_digests: tuple[str, ...] = ()  # stored under any of these (clientip.ip_hashes)
    domain: str | None = None  # the e-mail's domain, lower-case
    country: str | None = None  # ISO 3166-1 alpha-2, upper-case
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    held_only: bool = False  # only signatures the abuse controls hold

    def where(self) -> list[Any]:
        filters: list[Any] = [col(Signature.petition_id) == self.petition_id]
        if self.ip_digests:
            filters.append(col(Signature.ip_hash).in_(self.ip_digests))
        if self.domain is not None:
            filters.append(col(Signature.email_domain) == self.domain)
        if self.country is not None:
            filters.append(col(Signature.country) == self.country)
        if self.created_from is not None:
            filters.append(col(Signature.created_at) >= self.created_from)
        if self.created_to is not None:
            filters.append(col(Signature.created_at) < self.created_to)
        if self.held_only:
            filters.append(col(Signature.status) == SignatureStatus.suspect)
        return filters


def invalidate(session: Session, *, selection: Selection, settings: Settings) -> tuple[int, int]:
    """Invalidate the selected signatures (an organiser's clean-up after a bot): they no longer
    count, and confirmed ones are counted out of the tallies. -> (invalidated, counted out)

    Works in rounds of INVALIDATE_BATCH; each row changes status under a guard on its current
    status, so a concurrent confirmation or withdrawal is counted once either way.
    """
    filters = [*selection.where(), col(Signature.status).in_(INVALIDATABLE)]
    invalidated = uncounted = 0
    last_id = 0
    while True:
        batch = list(
            session.exec(
                select(Signature)
                .where(*filters, col(Signature.id) > last_id)
                .order_by(col(Signature.id))
                .limit(INVALIDATE_BATCH)
            )
        )
        if not batch:
            break
        last_id = batch[-1].id or last_id
        for signature in batch:
            result = session.execute(
                update(Signature)
                .where(col(Signature.id) == signature.id, col(Signature.status) == signature.status)
                .values(status=SignatureStatus.invalidated)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # changed meanwhile (confirmed, withdrawn): leave it to that change
            invalidated += 1
            if signature.status == SignatureStatus.confirmed and signature.confirmed_at:
                tally.add_to_tallies(
                    session,
                    signature=signature,
                    confirmed_at=signature.confirmed_at,
                    settings=settings,
                    delta=-1,
                )
                uncounted += 1
    session.flush()
    return invalidated, uncounted


def release(session: Session, *, selection: Selection) -> int:
    """Release the selected held signatures (false alarms): each becomes pending and gets its
    confirmation e-mail. -> how many were released."""
    released = session.execute(
        update(Signature)
        .where(*selection.where(), col(Signature.status) == SignatureStatus.suspect)
        .values(status=SignatureStatus.pending, held_reason=None)
        .returning(col(Signature.id), col(Signature.email))
        .execution_options(synchronize_session=False)
    ).all()
    for signature_id, email in released:
        outbox.enqueue(
            session,
            kind="signature_confirmation",
            payload={"signature_id": signature_id},
            dedup_key=outbox.confirmation_key(signature_id, "released"),
            recipient=email,
        )
    return len(released)


def anonymise(session: Session, *, petition_id: int, after_id: int, limit: int) -> list[int]:
    """Remove the personal data of the petition's next `limit` signatures with ids above
    `after_id` that still have it (retention). -> their ids.

    Each keeps its row, status, country, locale and dates, so counts, per-country and hourly
    totals stay right; its name and e-mail become empty, `email_normalised` becomes
    `anonymised:<id>` (it is unique per petition), the postcode NULL, consent to updates
    false, and `anonymised_at` is set. One set-based statement; a signature anonymised by a
    concurrent run is skipped.
    """
    batch = (
        select(col(Signature.id))
        .where(
            col(Signature.petition_id) == petition_id,
            col(Signature.id) > after_id,
            col(Signature.anonymised_at).is_(None),
        )
        .order_by(col(Signature.id))
        .limit(limit)
    )
    return list(
        session.execute(
            update(Signature)
            .where(
                col(Signature.id).in_(batch.scalar_subquery()),
                col(Signature.anonymised_at).is_(None),  # a concurrent run got there
            )
            .values(
                name="",
                email="",
                email_normalised=literal("anonymised:", String) + cast(col(Signature.id), String),
                postcode=None,
                consent_updates=False,
                anonymised_at=utcnow(),
            )
            .returning(col(Signature.id))
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
