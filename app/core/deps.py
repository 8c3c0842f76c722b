"""Annotated dependency aliases shared by the routers (who is calling: app/auth/deps.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session

from app.core.config import Settings
from app.core.lanes import is_admin_path


async def get_settings_dep(request: Request) -> Settings:
    # async: no I/O, so no trip through the thread pool.
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: commit when the endpoint succeeds, roll back otherwise.

    Used with scope="function" so the commit happens *before* the response is sent: a client
    is never told "accepted" about something that was not committed.
    """
    # The admin API has a pool of its own (app/core/lanes.py): it cannot take the public's.
    state = request.app.state
    engine = state.admin_engine if is_admin_path(request.url.path) else state.engine
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# A row id in a path: bounded, so a huge number is a 422, not an integer overflow in the driver.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
