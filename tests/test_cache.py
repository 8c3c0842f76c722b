"""The per-process read cache: public reads are reused for CACHE_SECONDS, then refreshed."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session

from app.core import cache
from app.core.config import Settings
from app.main import create_app
from app.petitions.models import Petition


def test_public_reads_are_reused_briefly_then_refreshed(
    settings: Settings, engine: Any, demo: Any, session: Session
) -> None:
    cache.clear()
    app = create_app(settings.model_copy(update={"CACHE_SECONDS": 0.5}))
    with TestClient(app) as client:
        first = client.get("/api/v1/petitions/no-forced-return").json()
        page = client.get("/petitions/no-forced-return?lang=ko")
        assert page.status_code == 200 and "content-length" in page.headers
        session.execute(update(Petition).values(goal=7))
        session.commit()
        # Within the cache time: the same answer, without touching the database (answered
        # before routing, with the same headers, security headers included).
        again = client.get("/api/v1/petitions/no-forced-return")
        assert again.json() == first
        assert again.headers["content-type"] == "application/json"
        assert again.headers["x-frame-options"] == "DENY"
        time.sleep(0.6)
        assert client.get("/api/v1/petitions/no-forced-return").json()["goal"] == 7
        # A different language is a different entry.
        korean = client.get("/api/v1/petitions/no-forced-return?lang=ko").json()
        assert korean["locale"] == "ko"
    cache.clear()
