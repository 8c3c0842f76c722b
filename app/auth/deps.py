"""Who is calling: the bearer token's user, as a dependency of the admin API's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import OAuth2PasswordBearer

from app.auth import service as auth_service
from app.auth.models import User
from app.core.deps import SessionDep

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_current_user(
    session: SessionDep,
    token: Annotated[str | None, Depends(bearer)],
) -> User:
    """The user behind the bearer token; 401 (with WWW-Authenticate) otherwise."""
    user = auth_service.user_for_token(session, token=token) if token else None
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="Sign in: send a valid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
