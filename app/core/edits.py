"""Rules every admin edit follows: what a PATCH may clear, how translations merge, unique races."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.core.errors import ProblemError, field_problem


def refuse_nulls(data: BaseModel, fields: tuple[str, ...]) -> None:
    """In a PATCH, null means "clear"; these fields cannot be cleared."""
    for field in fields:
        if field in data.model_fields_set and getattr(data, field) is None:
            raise field_problem(field, "null", f"{field} cannot be null")


def merge_translations(
    current: dict[str, Any], changes: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Apply a PATCH of translations: given languages are replaced, null removes one.

    Returns the new translations and the languages changed and removed.
    """
    merged = dict(current)
    changed, removed = [], []
    for locale, text in sorted((changes or {}).items()):
        if text is None:
            if locale in merged:
                del merged[locale]
                removed.append(locale)
        elif merged.get(locale) != text:
            merged[locale] = text
            changed.append(locale)
    return merged, changed, removed


def check_default_locale(default_locale: str, translations: dict[str, Any]) -> None:
    """422 unless the default language is among the translations."""
    if default_locale not in translations:
        raise field_problem(
            "default_locale",
            "default_locale_untranslated",
            f"The default language {default_locale!r} needs a translation "
            f"(translations has {', '.join(sorted(translations)) or 'none'})",
        )


def flush_unique(session: Session, instance: Any, conflict: ProblemError) -> None:
    """Add and flush in a savepoint; a unique-constraint race becomes `conflict`."""
    try:
        with session.begin_nested():
            session.add(instance)
            session.flush()
    except IntegrityError:
        raise conflict from None
