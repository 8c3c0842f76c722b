"""What each event says, split by scope: an endpoint gets no more personal data than its scope.

Every builder returns an EventData: `counts` (nothing about a person: the petition, the counts,
amounts), `names` (added for the names and full scopes: who, by name and country, and the ids
that single a person out) and `full` (added for the full scope only: how to reach them). Parts
are merged key by key, so `names` and `full` can add fields to an object `counts` starts.
README's "Webhooks" section lists the fields.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from app.donations.models import Donation
from app.letters.models import Letter, LetterDelivery, PetitionDelivery
from app.petitions.models import Petition
from app.signatures.models import Signature
from app.targets.models import Target
from app.webhooks.models import Scope


@dataclass(frozen=True)
class EventData:
    counts: dict[str, Any]
    names: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)

    def for_scope(self, scope: Scope) -> dict[str, Any]:
        """The event's data as an endpoint of `scope` receives it."""
        data = copy.deepcopy(self.counts)
        if scope in (Scope.names, Scope.full):
            _merge(data, self.names)
        if scope == Scope.full:
            _merge(data, self.full)
        return data


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def signature(signature: Signature, petition: Petition, *, count: int) -> EventData:
    """signature.confirmed and signature.withdrawn: the petition's count after the change."""
    return EventData(
        counts={"petition": petition.slug, "signature_count": count},
        names={
            "signature": {"id": signature.id, "name": signature.name, "country": signature.country}
        },
        full={
            "signature": {
                "email": signature.email,
                "postcode": signature.postcode,
                "locale": signature.locale,
                "consent_updates": signature.consent_updates,
            }
        },
    )


def letter_sent(
    delivery: LetterDelivery,
    *,
    petition: Petition,
    target: Target,
    letter: Letter | None,
    petition_delivery: PetitionDelivery | None,
) -> EventData:
    """letter.sent: a supporter's letter or a petition delivery's letter reached an official
    (accepted by their mail server, or marked posted)."""
    counts: dict[str, Any] = {
        "petition": petition.slug,
        "letter": {
            "kind": "supporter" if letter is not None else "petition_delivery",
            "channel": str(delivery.channel),
            "target": target.key,
        },
    }
    if petition_delivery is not None:
        counts["letter"]["delivery_number"] = petition_delivery.number
    if letter is None:
        return EventData(counts=counts, names={"letter": {"id": delivery.id}})
    return EventData(
        counts=counts,
        names={
            "letter": {"id": delivery.id},
            "supporter": {"name": letter.name, "country": letter.country},
        },
        full={"supporter": {"email": letter.email, "city": letter.city}},
    )


def petition_delivered(
    petition: Petition, delivery: PetitionDelivery, *, target_keys: list[str]
) -> EventData:
    """petition.delivered: the petition went to its officials (counts only, in every scope:
    the signatories' names travel in the annex to the officials, never to a webhook)."""
    return EventData(
        counts={
            "petition": petition.slug,
            "delivery": {
                "number": delivery.number,
                "confirmed_count": delivery.confirmed_count,
                "countries": copy.deepcopy(delivery.countries),
                "targets": target_keys,
                "annex_rows": delivery.annex_rows,
                "annex_sha256": delivery.annex_sha256,
            },
        }
    )


def donation(donation: Donation, *, amount: int, refunded: int, currency: str) -> EventData:
    """donation.paid and donation.refunded: one payment of a gift (a one-off gift has one, a
    monthly gift one a month), amounts in minor units."""
    return EventData(
        counts={
            "donation": {
                "amount": amount,
                "amount_refunded": refunded,
                "currency": currency.upper(),
                "frequency": str(donation.frequency),
            }
        },
        names={"donation": {"ref": donation.ref}, "donor": {"name": donation.name}},
        full={"donor": {"email": donation.email}},
    )
