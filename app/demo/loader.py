"""Loads the demo campaign (see ../shared/campaign-brief.md) into an empty database."""

from __future__ import annotations

from sqlmodel import Session, select

from app.campaigns.models import Campaign
from app.demo import content
from app.letters.models import LetterTemplate, TemplateKind
from app.petitions.models import Petition, PetitionStatus, PetitionTarget
from app.targets.models import DeliveryChannel, Target, TargetGroup


def load_demo(session: Session) -> bool:
    """Create the demo campaign, its open petition and its targets. Does nothing if present.

    Returns True when it created the campaign.
    """
    spec = content.CAMPAIGN
    if session.exec(select(Campaign).where(Campaign.slug == spec["slug"])).first() is not None:
        return False
    campaign = Campaign(
        slug=spec["slug"],
        default_locale=spec["default_locale"],
        translations=spec["translations"],
        currencies=list(spec["currencies"]),
    )
    session.add(campaign)
    session.flush()
    assert campaign.id is not None

    petition_spec = content.PETITION
    petition = Petition(
        campaign_id=campaign.id,
        slug=petition_spec["slug"],
        status=PetitionStatus.open,
        goal=petition_spec["goal"],
        default_locale=petition_spec["default_locale"],
        translations=petition_spec["translations"],
    )
    session.add(petition)
    session.flush()
    assert petition.id is not None

    position = 0
    for group_spec in content.TARGET_GROUPS:
        group = TargetGroup(
            campaign_id=campaign.id, key=group_spec["key"], names=group_spec["names"]
        )
        session.add(group)
        session.flush()
        for target_spec in group_spec["targets"]:
            target = Target(
                campaign_id=campaign.id,
                group_id=group.id,
                key=target_spec["key"],
                name=target_spec["name"],
                role=target_spec["role"],
                organisation=target_spec["organisation"],
                translations=target_spec.get("translations", {}),
                country=target_spec["country"],
                language=target_spec["language"],
                email=target_spec.get("email"),
                postal_address=target_spec.get("postal_address"),
                delivery_channel=DeliveryChannel.email,
            )
            session.add(target)
            session.flush()
            assert target.id is not None
            session.add(
                PetitionTarget(petition_id=petition.id, target_id=target.id, position=position)
            )
            position += 1
    for language, template in content.LETTER_TEMPLATES.items():
        session.add(
            LetterTemplate(
                campaign_id=campaign.id,
                kind=TemplateKind.supporter,
                language=language,
                subject=template["subject"],
                body=template["body"],
                message=template["message"],
            )
        )
    session.flush()
    return True
