"""Jinja2 environments: one for pages, one (sandboxed) for e-mails."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from app.core.config import ROOT
from app.core.i18n import LANGUAGE_NAMES, number, translate

TEMPLATES_DIR = ROOT / "templates"


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


@pass_context
def _translate_in_context(context: Context, key: str, **values: Any) -> str:
    """`{{ _("key") }}` in a template: the string in the template's `locale`."""
    return translate(context.get("locale") or "en", key, **values)


@pass_context
def _number_in_context(context: Context, value: Any) -> str:
    """`{{ n|number }}`: 100,000 in English, 100 000 (no-break space) in Ukrainian."""
    return number(value, context.get("locale") or "en")


@cache
def page_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR / "pages"))
    env = templates.env
    env.globals["_"] = _translate_in_context
    env.globals["language_names"] = LANGUAGE_NAMES
    env.filters["paragraphs"] = _paragraphs
    env.filters["number"] = _number_in_context
    return templates


@cache
def email_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATES_DIR / "email")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["translate"] = translate
    env.filters["paragraphs"] = _paragraphs
    env.filters["number"] = _number_in_context
    return env


def render_email(template: str, **context: Any) -> tuple[str, str]:
    """Render `templates/email/<template>.txt` and `.html`; returns (text, html)."""
    env = email_environment()
    text = env.get_template(f"{template}.txt").render(**context)
    html = env.get_template(f"{template}.html").render(**context)
    return text, html
