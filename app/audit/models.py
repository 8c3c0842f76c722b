"""The audit log: who did what, to which campaign or petition, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_campaign_created", "campaign_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    actor_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="SET NULL")),
    )
    actor_email: str | None = Field(default=None, sa_type=String(320))  # kept if the user goes
    action: str = Field(sa_type=String(60))  # e.g. "petition.status", "signatures.export"
    subject: str = Field(default="", sa_type=String(200))  # e.g. "petition:no-forced-return"
    campaign_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("campaign.id", ondelete="SET NULL"))
    )
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class AuditEntryPublic(BaseModel):
    id: int
    actor_email: str | None
    action: str
    subject: str
    details: dict[str, Any]
    created_at: datetime
