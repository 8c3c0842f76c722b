"""Managing targets, the officials petitions address, and the groups they are listed in."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth import service as auth_service
from app.auth.models import User
from app.campaigns.models import Campaign
from app.core import edits
from app.core.db import utcnow
from app.core.errors import ProblemError, field_problem
from app.targets.models import (
    DeliveryChannel,
    Target,
    TargetAdmin,
    TargetCreate,
    TargetGroup,
    TargetGroupAdmin,
    TargetUpdate,
)

# Fields a PATCH may change directly (group is handled apart).
PLAIN_FIELDS = (
    "key",
    "name",
    "role",
    "organisation",
    "country",
    "language",
    "email",
    "postal_address",
    "delivery_channel",
)
NOT_NULL = ("key", "name", "role", "organisation", "country", "language", "delivery_channel")


def managed(session: Session, *, user: User, target_id: int) -> Target:
    """The target, if this user may manage its campaign; 404 otherwise."""
    target = session.get(Target, target_id)
    if target is None or not auth_service.can_manage(
        session, user=user, campaign_id=target.campaign_id
    ):
        raise ProblemError(404, "target-not-found", "Target not found")
    return target


def _check_channel(target: Target) -> None:
    """The delivery channel needs its address."""
    if target.delivery_channel == DeliveryChannel.email and not target.email:
        raise field_problem(
            "email", "email_missing", "The e-mail delivery channel needs an e-mail address"
        )
    if target.delivery_channel == DeliveryChannel.postal and not target.postal_address:
        raise field_problem(
            "postal_address",
            "postal_address_missing",
            "The postal delivery channel needs a postal address",
        )


def _key_taken(key: str) -> ProblemError:
    return ProblemError(
        409,
        "target-exists",
        "A target with this key exists in the campaign",
        f"Choose another key than {key!r}.",
    )


def _group(
    session: Session,
    *,
    actor: User,
    campaign_id: int,
    key: str,
    names: dict[str, str] | None,
) -> TargetGroup:
    """The campaign's group with this key, created when new; `names` given are updated."""
    group = session.exec(
        select(TargetGroup).where(TargetGroup.campaign_id == campaign_id, TargetGroup.key == key)
    ).first()
    if group is None:
        group = TargetGroup(campaign_id=campaign_id, key=key, names=dict(names or {}))
        try:
            with session.begin_nested():
                session.add(group)
                session.flush()
        except IntegrityError:  # created meanwhile by a concurrent request: use that one
            group = session.exec(
                select(TargetGroup).where(
                    TargetGroup.campaign_id == campaign_id, TargetGroup.key == key
                )
            ).one()
        else:
            audit_service.record(
                session,
                actor=actor,
                action="target_group.create",
                subject=f"target_group:{key}",
                campaign_id=campaign_id,
                details={"names": group.names},
            )
            return group
    if names and {**group.names, **names} != group.names:
        group.names = {**group.names, **names}
        session.add(group)
        session.flush()
        audit_service.record(
            session,
            actor=actor,
            action="target_group.update",
            subject=f"target_group:{key}",
            campaign_id=campaign_id,
            details={"names": sorted(names)},
        )
    return group


def save_group(
    session: Session, *, actor: User, campaign_id: int, key: str, names: dict[str, str]
) -> TargetGroup:
    """Create the campaign's group `key` with these names, or rename it (the names given)."""
    return _group(session, actor=actor, campaign_id=campaign_id, key=key, names=names)


def create(session: Session, *, actor: User, campaign: Campaign, data: TargetCreate) -> Target:
    assert campaign.id is not None
    values = data.model_dump(exclude={"group", "group_names", "translations"})
    target = Target(
        campaign_id=campaign.id,
        translations={loc: text.model_dump() for loc, text in data.translations.items()},
        **values,
    )
    _check_channel(target)
    exists = session.exec(
        select(Target.id).where(Target.campaign_id == campaign.id, Target.key == data.key)
    ).first()
    if exists is not None:
        raise _key_taken(data.key)
    if data.group is not None:
        group = _group(
            session, actor=actor, campaign_id=campaign.id, key=data.group, names=data.group_names
        )
        target.group_id = group.id
    elif data.group_names is not None:
        raise field_problem(
            "group_names", "group_missing", "group_names needs a group key in group"
        )
    edits.flush_unique(session, target, _key_taken(data.key))
    audit_service.record(
        session,
        actor=actor,
        action="target.create",
        subject=f"target:{target.key}",
        campaign_id=campaign.id,
        details={
            "id": target.id,
            "name": target.name,
            "delivery_channel": target.delivery_channel,
            "group": data.group,
            "locales": sorted(target.translations),
        },
    )
    return target


def update(session: Session, *, actor: User, target: Target, data: TargetUpdate) -> Target:
    """Change the fields sent; the channel must still have its address. `translations`
    replaces the languages given and removes those sent as null."""
    sent = data.model_fields_set
    edits.refuse_nulls(data, (*NOT_NULL, "translations"))
    if data.group_names is not None and (
        data.group is None if "group" in sent else target.group_id is None
    ):
        raise field_problem(
            "group_names", "group_missing", "group_names needs a group key in group"
        )
    details: dict[str, Any] = {}
    for field in PLAIN_FIELDS:
        if field in sent and getattr(data, field) != getattr(target, field):
            details[field] = {"from": getattr(target, field), "to": getattr(data, field)}
    if "postal_address" in details:  # may be long; the audit log says only that it changed
        details["postal_address"] = "changed"
    translations, changed, removed = edits.merge_translations(
        target.translations,
        {loc: t.model_dump() if t else None for loc, t in (data.translations or {}).items()},
    )
    if changed or removed:
        details["translations"] = {"changed": changed, "removed": removed}
    if data.key is not None and "key" in details:
        taken = session.exec(
            select(Target.id).where(
                Target.campaign_id == target.campaign_id,
                Target.key == data.key,
                col(Target.id) != target.id,
            )
        ).first()
        if taken is not None:
            raise _key_taken(data.key)

    # Groups first: nothing of the target is changed (and autoflushed) before its checks.
    old_group = _group_key(session, target.group_id)
    group_id = target.group_id
    group_key = data.group if "group" in sent else old_group
    if group_key is not None and ("group" in sent or data.group_names is not None):
        group_id = _group(
            session,
            actor=actor,
            campaign_id=target.campaign_id,
            key=group_key,
            names=data.group_names,
        ).id
    elif group_key is None:
        group_id = None
    if group_key != old_group:
        details["group"] = {"from": old_group, "to": group_key}

    with session.no_autoflush:
        for field in PLAIN_FIELDS:
            if field in sent:
                setattr(target, field, getattr(data, field))
        if changed or removed:
            target.translations = translations
        target.group_id = group_id
        _check_channel(target)
    if details:
        edits.flush_unique(session, target, _key_taken(target.key))
        audit_service.record(
            session,
            actor=actor,
            action="target.update",
            subject=f"target:{target.key}",
            campaign_id=target.campaign_id,
            details=details,
        )
    return target


def retire(session: Session, *, actor: User, target: Target) -> Target:
    """Stop addressing this official: retired targets disappear from petition pages.

    Retiring twice changes nothing.
    """
    if target.retired_at is None:
        target.retired_at = utcnow()
        session.add(target)
        session.flush()
        audit_service.record(
            session,
            actor=actor,
            action="target.retire",
            subject=f"target:{target.key}",
            campaign_id=target.campaign_id,
            details={"id": target.id},
        )
    return target


def list_for_campaign(
    session: Session, *, campaign_id: int
) -> tuple[list[TargetGroup], list[Target]]:
    """The campaign's groups (in creation order) and its targets, retired ones included,
    grouped in that order, ungrouped last."""
    groups = list(
        session.exec(
            select(TargetGroup)
            .where(TargetGroup.campaign_id == campaign_id)
            .order_by(col(TargetGroup.id))
        )
    )
    order = {g.id: i for i, g in enumerate(groups)}
    targets = sorted(
        session.exec(select(Target).where(Target.campaign_id == campaign_id)),
        key=lambda t: (order.get(t.group_id, len(order)), t.id or 0),
    )
    return groups, targets


def _group_key(session: Session, group_id: int | None) -> str | None:
    if group_id is None:
        return None
    group = session.get(TargetGroup, group_id)
    return group.key if group else None


def to_admin_list(session: Session, targets: list[Target]) -> list[TargetAdmin]:
    group_ids = {t.group_id for t in targets if t.group_id is not None}
    keys = (
        {
            g.id: g.key
            for g in session.exec(select(TargetGroup).where(col(TargetGroup.id).in_(group_ids)))
        }
        if group_ids
        else {}
    )
    return [to_admin(t, group=keys.get(t.group_id) if t.group_id else None) for t in targets]


def to_admin(target: Target, *, group: str | None) -> TargetAdmin:
    assert target.id is not None
    return TargetAdmin(
        id=target.id,
        key=target.key,
        name=target.name,
        role=target.role,
        organisation=target.organisation,
        country=target.country,
        language=target.language,
        email=target.email,
        postal_address=target.postal_address,
        delivery_channel=target.delivery_channel,
        translations=target.translations,
        group=group,
        retired_at=target.retired_at,
        created_at=target.created_at,
    )


def group_to_admin(group: TargetGroup) -> TargetGroupAdmin:
    return TargetGroupAdmin(key=group.key, names=group.names)
