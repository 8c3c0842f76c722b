"""Accounts, logins, tokens and who may touch which campaign."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import Engine, case, delete, func, true, update
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import (
    ApiToken,
    ApiTokenCreate,
    CampaignMember,
    LoginFailure,
    Role,
    TokenKind,
    User,
    UserCreate,
    UserUpdate,
)
from app.auth.security import hash_password, new_token, token_hash, verify_password
from app.campaigns.models import Campaign
from app.core.addresses import check_email
from app.core.config import Settings
from app.core.db import session_scope, utcnow
from app.core.errors import FieldError, ProblemError
from app.core.i18n import SUPPORTED_LOCALES

SESSION_HOURS = 12
# What a bearer token may be: the console's cookie works only in the console (its forms carry
# a CSRF token; a bearer never needs one).
BEARER_KINDS = (TokenKind.session, TokenKind.api)


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: Role,
    name: str = "",
    campaign_slugs: list[str] | None = None,
) -> User:
    """Create an account; the e-mail must be new. Organisers get the campaigns named."""
    email = email.strip().lower()
    if session.exec(select(User).where(User.email == email)).first() is not None:
        raise ProblemError(409, "user-exists", "An account with this e-mail already exists")
    user = User(email=email, name=name, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    set_campaigns(session, user=user, campaign_slugs=campaign_slugs or [])
    return user


def set_campaigns(session: Session, *, user: User, campaign_slugs: list[str]) -> None:
    """Make the user a member of exactly these campaigns."""
    assert user.id is not None
    campaigns = list(session.exec(select(Campaign).where(col(Campaign.slug).in_(campaign_slugs))))
    unknown = set(campaign_slugs) - {c.slug for c in campaigns}
    if unknown:
        raise ProblemError(
            422,
            "campaign-not-found",
            "Unknown campaign",
            f"No campaign called {', '.join(sorted(unknown))}.",
        )
    for member in session.exec(select(CampaignMember).where(CampaignMember.user_id == user.id)):
        session.delete(member)
    session.flush()
    for campaign in campaigns:
        assert campaign.id is not None
        session.add(CampaignMember(campaign_id=campaign.id, user_id=user.id))
    session.flush()


def campaign_slugs(session: Session, *, user: User) -> list[str]:
    rows = session.exec(
        select(Campaign.slug)
        .join(CampaignMember, col(CampaignMember.campaign_id) == col(Campaign.id))
        .where(CampaignMember.user_id == user.id)
        .order_by(col(Campaign.slug))
    )
    return list(rows)


def check_login_allowed(
    session: Session, *, settings: Settings, email: str, ip_digest: str | None
) -> None:
    """Refuse (429) while there have been too many recent failed sign-ins: to this account from
    this IP, to this account from everywhere, or from this IP to any account.

    The first limit is the low one, so that someone guessing from one place cannot lock the
    account's owner out from theirs; the account-wide limit (100 by default, as NIST SP 800-63B
    allows) stops guessing spread over many addresses.
    """
    since = utcnow() - timedelta(minutes=settings.LOGIN_WINDOW_MINUTES)
    email = email.strip().lower()
    from_here = col(LoginFailure.ip_hash) == ip_digest if ip_digest else true()
    by_email, by_email_here = session.exec(
        select(func.count(), func.coalesce(func.sum(case((from_here, 1), else_=0)), 0))
        .select_from(LoginFailure)
        .where(LoginFailure.email == email, col(LoginFailure.created_at) >= since)
    ).one()
    by_ip = 0
    if ip_digest:
        by_ip = session.exec(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.ip_hash == ip_digest, col(LoginFailure.created_at) >= since)
        ).one()
    if (
        by_email_here >= settings.LOGIN_MAX_FAILURES_PER_EMAIL_AND_IP
        or by_email >= settings.LOGIN_MAX_FAILURES_PER_EMAIL
        or by_ip >= settings.LOGIN_MAX_FAILURES_PER_IP
    ):
        raise ProblemError(
            429,
            "too-many-attempts",
            "Too many failed sign-ins",
            f"Try again in {settings.LOGIN_WINDOW_MINUTES} minutes.",
        )


def record_login_failure(engine: Engine, *, email: str, ip_digest: str | None) -> None:
    """Remember a failed sign-in in its own transaction (the request's one is rolled back)."""
    with session_scope(engine) as session:
        session.add(LoginFailure(email=email.strip().lower()[:320], ip_hash=ip_digest))
        cutoff = utcnow() - timedelta(days=1)  # nothing older matters: keep the table small
        session.execute(delete(LoginFailure).where(col(LoginFailure.created_at) < cutoff))


def authenticate(session: Session, *, email: str, password: str) -> User:
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    ok = verify_password(password, user.password_hash if user else None)
    if user is None or not ok or not user.is_active:
        raise ProblemError(401, "login-failed", "Incorrect e-mail or password")
    return user


def sign_in(
    session: Session,
    *,
    engine: Engine,
    settings: Settings,
    email: str,
    password: str,
    ip_digest: str | None,
) -> User:
    """A password sign-in, as the API's token endpoint and the console both do it: refused
    (429) while throttled, 401 for a wrong e-mail or password, which is then remembered.

    On failure the caller's transaction is rolled back (nothing to keep; on SQLite it holds the
    only write lock) before the failure is recorded in a transaction of its own.
    """
    check_login_allowed(session, settings=settings, email=email, ip_digest=ip_digest)
    try:
        return authenticate(session, email=email, password=password)
    except ProblemError:
        session.rollback()
        record_login_failure(engine, email=email, ip_digest=ip_digest)
        raise


def issue_token(
    session: Session,
    *,
    user: User,
    kind: TokenKind,
    name: str = "",
    lifetime: timedelta | None = None,
) -> tuple[str, ApiToken]:
    """Create a token; returns the token itself (shown once) and its stored record."""
    assert user.id is not None
    token = new_token()
    record = ApiToken(
        user_id=user.id,
        kind=kind,
        name=name,
        token_hash=token_hash(token),
        prefix=token[: len("chorus_") + 6],
        expires_at=utcnow() + lifetime if lifetime else None,
        credentials_version=user.credentials_version,
    )
    session.add(record)
    session.flush()
    return token, record


def user_for_token(
    session: Session, *, token: str, kinds: Collection[TokenKind] = BEARER_KINDS
) -> User | None:
    """The active user a valid, unexpired, unrevoked token of one of `kinds` belongs to."""
    now = utcnow()
    record = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    if record is None or record.revoked_at is not None:
        return None
    if record.kind not in kinds:
        return None
    if record.expires_at is not None and record.expires_at <= now:
        return None
    user = session.get(User, record.user_id)
    if user is None or not user.is_active:
        return None
    if record.kind == TokenKind.session and record.credentials_version != user.credentials_version:
        return None  # signed in before a password or role change, or a deactivation
    # Note use at most once a minute, not on every request.
    if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
        session.execute(
            update(ApiToken).where(col(ApiToken.id) == record.id).values(last_used_at=now)
        )
    return user


def end_sessions(session: Session, *, user: User, revoke_api_tokens: bool = False) -> None:
    """Sign the user out everywhere: every session token issued so far stops working.

    Called for a password or role change and a deactivation. With `revoke_api_tokens` (a
    deactivation) the user's long-lived API tokens are revoked too, for good: reactivating the
    account revives none of them.
    """
    assert user.id is not None
    session.execute(
        update(User)
        .where(col(User.id) == user.id)
        .values(credentials_version=col(User.credentials_version) + 1)
    )
    if revoke_api_tokens:
        session.execute(
            update(ApiToken)
            .where(col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )
    session.refresh(user)


def revoke_token(session: Session, *, user: User, token_id: int) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None or (record.user_id != user.id and user.role != Role.admin):
        raise ProblemError(404, "token-not-found", "Token not found")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.flush()
    return record


# --- the console's sessions -------------------------------------------------------------------
#
# A console session is a token like the others (stored as its SHA-256, revoked like the others),
# of kind `console`, sent as an HttpOnly cookie. Its expiry moves on with each use, so it ends
# after `idle` without one; whatever its use, it ends SESSION_HOURS after sign-in.


def start_console_session(session: Session, *, user: User, idle: timedelta) -> str:
    """Open a console session for a signed-in user; returns the cookie's value."""
    token, _ = issue_token(
        session, user=user, kind=TokenKind.console, name="console", lifetime=idle
    )
    return token


def console_user(session: Session, *, token: str, idle: timedelta) -> User | None:
    """The user of a live console session (every rule of `user_for_token` applies); each use
    keeps it alive for another `idle` (written at most once a minute)."""
    user = user_for_token(session, token=token, kinds=(TokenKind.console,))
    if user is None:
        return None
    record = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).one()
    now = utcnow()
    if now - record.created_at >= timedelta(hours=SESSION_HOURS):
        return None
    expires_at = now + idle
    if record.expires_at is None or expires_at - record.expires_at > timedelta(minutes=1):
        session.execute(
            update(ApiToken).where(col(ApiToken.id) == record.id).values(expires_at=expires_at)
        )
    return user


def end_console_session(session: Session, *, token: str) -> bool:
    """Sign out: the session stops working at once. False when it had already ended."""
    result = session.execute(
        update(ApiToken)
        .where(
            col(ApiToken.token_hash) == token_hash(token),
            col(ApiToken.kind) == TokenKind.console,
            col(ApiToken.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_locale(session: Session, *, user: User, locale: str) -> None:
    """The language the console speaks to this person."""
    if locale not in SUPPORTED_LOCALES:
        raise ProblemError(
            422, "locale-unsupported", "Unsupported language", ", ".join(SUPPORTED_LOCALES)
        )
    user.locale = locale
    session.add(user)
    session.flush()


def accessible_campaign_ids(session: Session, *, user: User) -> list[int] | None:
    """The campaigns a user may manage; None means all of them (admins)."""
    if user.role == Role.admin:
        return None
    return list(
        session.exec(select(CampaignMember.campaign_id).where(CampaignMember.user_id == user.id))
    )


def can_manage(session: Session, *, user: User, campaign_id: int) -> bool:
    if user.role == Role.admin:
        return True
    return session.get(CampaignMember, (campaign_id, user.id)) is not None


def require_admin(user: User) -> None:
    if user.role != Role.admin:
        raise ProblemError(403, "admin-only", "Only admins may do this")


def ensure_dev_admin(session: Session, *, email: str, password: str) -> User:
    """Development (`chorus dev`): an active admin account `email` whose password is now
    `password` (sessions under the previous one end), created when missing."""
    user = session.exec(select(User).where(User.email == email)).first()
    if user is None:
        return create_user(session, email=email, password=password, role=Role.admin, name="Dev")
    user.password_hash = hash_password(password)
    user.role = Role.admin
    user.is_active = True
    session.add(user)
    session.flush()
    end_sessions(session, user=user)
    return user


# --- accounts and API tokens, as admins manage them (the admin API and the console) ------------


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id))))


def get_user(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise ProblemError(404, "user-not-found", "User not found")
    return user


def add_user(session: Session, *, actor: User, data: UserCreate) -> User:
    """An admin creates an admin or an organiser of some campaigns; audited."""
    require_admin(actor)
    try:
        email = check_email(data.email)
    except ValueError as exc:
        raise ProblemError(
            422,
            "validation",
            "Invalid e-mail address",
            str(exc),
            errors=[FieldError(field="email", type="email_invalid", message=str(exc))],
        ) from None
    created = create_user(
        session,
        email=email,
        password=data.password,
        role=data.role,
        name=data.name,
        campaign_slugs=data.campaigns,
    )
    audit_service.record(
        session,
        actor=actor,
        action="user.create",
        subject=f"user:{email}",
        details={"role": data.role, "campaigns": data.campaigns},
    )
    return created


def update_user(session: Session, *, actor: User, user: User, data: UserUpdate) -> User:
    """An admin changes an account's name, role, campaigns, password or whether it may sign
    in; a new password or role, or a deactivation, signs the account out everywhere."""
    require_admin(actor)
    changes = data.model_dump(exclude_unset=True, exclude={"password"})
    signs_out = (data.role is not None and data.role != user.role) or data.password is not None
    deactivates = data.is_active is False and user.is_active
    if data.name is not None:
        user.name = data.name
    if data.role is not None:
        user.role = data.role
    if data.is_active is not None:
        user.is_active = data.is_active
    if data.password is not None:
        user.password_hash = hash_password(data.password)
        changes["password"] = "changed"  # noqa: S105 (audit note, not a password)
    if data.campaigns is not None:
        set_campaigns(session, user=user, campaign_slugs=data.campaigns)
    session.flush()
    if signs_out or deactivates:
        end_sessions(session, user=user, revoke_api_tokens=deactivates)
    audit_service.record(
        session, actor=actor, action="user.update", subject=f"user:{user.email}", details=changes
    )
    return user


def api_tokens(session: Session, *, user_id: int | None) -> list[tuple[ApiToken, str]]:
    """Long-lived API tokens with their owner's e-mail, oldest first: one account's, or
    (None) every account's."""
    query = (
        select(ApiToken, User.email)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(ApiToken.kind == TokenKind.api)
        .order_by(col(ApiToken.id))
    )
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(token, email) for token, email in session.exec(query)]


def create_api_token(
    session: Session, *, actor: User, data: ApiTokenCreate
) -> tuple[str, ApiToken]:
    """A long-lived token for scripts, for `actor`; the token is returned once, only its hash
    is kept. Audited."""
    lifetime = timedelta(days=data.expires_in_days) if data.expires_in_days else None
    token, record = issue_token(
        session, user=actor, kind=TokenKind.api, name=data.name, lifetime=lifetime
    )
    audit_service.record(
        session,
        actor=actor,
        action="token.create",
        subject=f"token:{record.id}",
        details={"name": data.name},
    )
    return token, record


def revoke_api_token(session: Session, *, actor: User, token_id: int) -> ApiToken:
    """Revoke a token at once: your own, or anyone's for an admin. Audited."""
    record = revoke_token(session, user=actor, token_id=token_id)
    audit_service.record(session, actor=actor, action="token.revoke", subject=f"token:{token_id}")
    return record
