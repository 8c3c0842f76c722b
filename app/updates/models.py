"""Updates that organisers send to the signers who asked for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow


class PetitionUpdate(SQLModel, table=True):
    __tablename__ = "petition_update"
    # A request sent twice (a double click on "Send", a client retrying after a timeout) carries
    # the same key and sends nothing more: the second answer is the first one's.
    __table_args__ = (
        UniqueConstraint("petition_id", "send_key", name="uq_petition_update_petition_id_send_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    petition_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("petition.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    # {locale: {"subject": ..., "body": ...}}; signers get their language or the default.
    translations: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    sent_by: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user_account.id", ondelete="SET NULL")),
    )
    recipients: int = 0
    send_key: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    first_send_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_send_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class UpdateText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = PydanticField(min_length=1, max_length=200)
    body: str = PydanticField(min_length=1, max_length=20000)


class UpdateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    translations: dict[str, UpdateText] = PydanticField(min_length=1)


class UpdateSent(BaseModel):
    id: int
    recipients: int
    first_send_at: datetime
    last_send_at: datetime
