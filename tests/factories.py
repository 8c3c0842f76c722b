"""Small factories for test data."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.petitions.models import Petition, PetitionStatus, PetitionTarget
from app.targets.models import Target

_seq = itertools.count(1)


def make_campaign(session: Session, **overrides: Any) -> Campaign:
    n = next(_seq)
    campaign = Campaign(
        slug=overrides.pop("slug", f"campaign-{n}"),
        default_locale="en",
        translations={"en": {"name": f"Campaign {n}", "description": "A test campaign."}},
        currencies=["EUR"],
        **overrides,
    )
    session.add(campaign)
    session.flush()
    return campaign


def make_petition(
    session: Session,
    *,
    status: PetitionStatus = PetitionStatus.open,
    locales: tuple[str, ...] = ("en",),
    goal: int = 100,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    slug: str | None = None,
    with_target: bool = True,
) -> Petition:
    n = next(_seq)
    campaign = make_campaign(session)
    assert campaign.id is not None
    petition = Petition(
        campaign_id=campaign.id,
        slug=slug or f"petition-{n}",
        status=status,
        goal=goal,
        default_locale=locales[0],
        translations={
            loc: {
                "title": f"Title {n} [{loc}]",
                "summary": f"Summary [{loc}]",
                "body": f"First paragraph [{loc}].\n\nSecond paragraph.",
            }
            for loc in locales
        },
        opens_at=opens_at,
        closes_at=closes_at,
    )
    session.add(petition)
    session.flush()
    if with_target:
        assert petition.id is not None
        target = Target(
            campaign_id=campaign.id,
            key=f"t-{n}",
            name="Minister of Tests",
            role="Minister",
            organisation="Ministry of Tests",
            country="GB",
            language="en",
            email=f"minister-{n}@gov.example",
        )
        session.add(target)
        session.flush()
        assert target.id is not None
        session.add(PetitionTarget(petition_id=petition.id, target_id=target.id))
    session.commit()
    return petition


def signer(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    data: dict[str, Any] = {
        "name": "Olena Kovalenko",
        "email": f"olena{n}@example.org",
        "country": "UA",
    }
    data.update(overrides)
    return data


def audited(session: Session, action: str) -> list[AuditEntry]:
    """The audit log's entries of `action`, oldest first, as the database has them now (the
    session's other objects are left as they are)."""
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
    return list(session.exec(query.execution_options(populate_existing=True)))
