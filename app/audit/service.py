"""Writing and reading the audit log."""

from __future__ import annotations

from typing import Any

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
) -> list[AuditEntry]:
    """Newest first. `campaign_ids=None` means every entry (admins)."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if campaign_ids is not None:
        query = query.where(col(AuditEntry.campaign_id).in_(campaign_ids))
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    return list(session.exec(query))
