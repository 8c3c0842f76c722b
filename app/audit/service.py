"""Writing and reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.auth.models import User


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    subject: str,
    campaign_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry in the caller's transaction (so it exists exactly when the change does)."""
    entry = AuditEntry(
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else None,
        action=action,
        subject=subject,
        campaign_id=campaign_id,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def entries(
    session: Session,
    *,
    campaign_ids: list[int] | None,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    actor_email: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """Newest first. `campaign_ids=None` means every entry (admins). `action` keeps the
    actions it begins ("petition." for every petition change); `since` and `until` bound
    `created_at` (until excluded)."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if campaign_ids is not None:
        query = query.where(col(AuditEntry.campaign_id).in_(campaign_ids))
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    if action:
        query = query.where(col(AuditEntry.action).startswith(action, autoescape=True))
    if actor_email:
        query = query.where(func.lower(col(AuditEntry.actor_email)) == actor_email.lower())
    if since is not None:
        query = query.where(col(AuditEntry.created_at) >= since)
    if until is not None:
        query = query.where(col(AuditEntry.created_at) < until)
    return list(session.exec(query))
