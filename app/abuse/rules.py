"""Allow and block rules (admins): listing, adding and removing them, each audited."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.abuse import service as abuse_service
from app.abuse.models import AbuseRule, RuleCreate
from app.audit import service as audit_service
from app.auth.models import User
from app.core.config import Settings
from app.core.db import dialect_insert, utcnow
from app.core.errors import ProblemError


def list_rules(session: Session) -> list[AbuseRule]:
    """Every rule, oldest first."""
    return list(session.exec(select(AbuseRule).order_by(col(AbuseRule.id))))


def add_rule(session: Session, *, actor: User, data: RuleCreate, settings: Settings) -> AbuseRule:
    """Store a rule for a value (normalised as the checks compare it); 409 if it has one."""
    value = abuse_service.normalise_rule_value(settings, data.kind, data.value)
    rule_id = session.execute(
        dialect_insert(session)(AbuseRule)
        .values(
            kind=data.kind,
            value=value,
            action=data.action,
            note=data.note,
            created_by=actor.id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(col(AbuseRule.id))
    ).scalar_one_or_none()
    if rule_id is None:
        raise ProblemError(409, "rule-exists", "There is already a rule for this value")
    rule = session.get(AbuseRule, rule_id)
    assert rule is not None
    audit_service.record(
        session,
        actor=actor,
        action="abuse.rule.create",
        subject=f"rule:{rule_id}",
        details={"kind": data.kind, "action": data.action, "note": data.note},
    )
    return rule


def remove_rule(session: Session, *, actor: User, rule_id: int) -> None:
    """Delete a rule; 404 if there is none."""
    rule = session.get(AbuseRule, rule_id)
    if rule is None:
        raise ProblemError(404, "rule-not-found", "Rule not found")
    session.delete(rule)
    audit_service.record(
        session, actor=actor, action="abuse.rule.delete", subject=f"rule:{rule_id}"
    )
