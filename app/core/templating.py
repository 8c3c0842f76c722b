"""Jinja2 environments: one for pages, one (sandboxed) for e-mails; e-mails to many people
rendered once per (template, language, shared values) and filled in per recipient."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import FileSystemLoader, StrictUndefined, Template, pass_context, select_autoescape
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

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


# --- One rendering for many recipients -------------------------------------------------------
#
# A surge sends the same e-mail to thousands of people: the same template, language and
# petition, only a name and two links differ. Rendering the templates for each was a fifth of a
# mail worker's CPU per message. `render_email_for` renders them once with markers where the
# recipient's values go, and fills the markers in for each message: the text as it is, the
# HTML escaped as autoescaping would. It checks first that this gives what rendering whole
# would: two more renderings (other markers, one with every character HTML escapes; and empty
# values) must equal the first one filled in. A template that does anything else with a
# recipient's value (a filter, a test on its length) fails the check and is rendered whole
# for every message, as before. tests/core/test_templating.py holds it to byte equality.

# Private-use characters: in no template or translation, and the values filled in are never
# searched for them again (the skeleton is split at the markers once).
_OPEN, _CLOSE = "\ue000", "\ue001"
_ESCAPED_PROBE = "<&\"'>"  # every character HTML escaping changes
SKELETONS_KEPT = 256  # (template, language, shared values) renderings kept per process


def _marker(name: str, probe: str = "") -> str:
    return f"{_OPEN}{probe}{name}{_CLOSE}"


@dataclass(frozen=True)
class _Skeleton:
    """A file's rendering split at its markers: literal, name, literal, name, ..., literal."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, rendered: str, names: tuple[str, ...]) -> _Skeleton:
        parts: list[str] = []
        rest = rendered
        while (start := rest.find(_OPEN)) >= 0:
            end = rest.find(_CLOSE, start)
            name = rest[start + 1 : end]
            if end < 0 or name not in names:
                raise ValueError("a marker the template changed")
            parts += [rest[:start], name]
            rest = rest[end + 1 :]
        parts.append(rest)
        return cls(tuple(parts))

    def fill(self, values: dict[str, str]) -> str:
        parts = list(self.parts)
        parts[1::2] = (values[name] for name in self.parts[1::2])
        return "".join(parts)


@dataclass(frozen=True)
class _Skeletons:
    templates: tuple[Template, Template]  # as loaded (a template changed on disk reloads)
    text: _Skeleton | None  # None: this template is rendered whole for each message
    html: _Skeleton | None


_skeletons: OrderedDict[tuple[Hashable, ...], _Skeletons] = OrderedDict()
_skeletons_lock = threading.Lock()  # (renderers run in worker threads)


def _build_skeletons(
    templates: tuple[Template, Template], names: tuple[str, ...], context: dict[str, Any]
) -> _Skeletons:
    text_template, html_template = templates

    def both(values: dict[str, str]) -> tuple[str, str]:
        return text_template.render(**context, **values), html_template.render(**context, **values)

    marked = {name: _marker(name) for name in names}
    probes = {name: _marker(name, _ESCAPED_PROBE) for name in names}
    empty = dict.fromkeys(names, "")
    text, html = both(marked)
    probe_text, probe_html = both(probes)
    empty_text, empty_html = both(empty)
    try:
        text_skeleton: _Skeleton | None = _Skeleton.of(text, names)
        html_skeleton: _Skeleton | None = _Skeleton.of(html, names)
    except ValueError:
        return _Skeletons(templates, None, None)
    assert text_skeleton is not None and html_skeleton is not None
    escaped = {name: str(escape(value)) for name, value in probes.items()}
    if text_skeleton.fill(probes) != probe_text or text_skeleton.fill(empty) != empty_text:
        text_skeleton = None
    if html_skeleton.fill(escaped) != probe_html or html_skeleton.fill(empty) != empty_html:
        html_skeleton = None
    return _Skeletons(templates, text_skeleton, html_skeleton)


def render_email_for(
    template: str, *, locale: str, personal: dict[str, str], **shared: Hashable
) -> tuple[str, str]:
    """render_email(template, t=..., locale=locale, **personal, **shared), for one of many
    recipients of the same e-mail: `personal` holds the values that are theirs (a name, their
    own links), `shared` what every recipient of it shares (hashable: the rendering is kept
    for them). Returns (text, html), the same as rendering whole."""
    env = email_environment()
    templates = (env.get_template(f"{template}.txt"), env.get_template(f"{template}.html"))
    names = tuple(sorted(personal))
    key = (template, locale, names, tuple(sorted(shared.items())))
    context: dict[str, Any] = {"t": partial(translate, locale), "locale": locale, **shared}
    with _skeletons_lock:
        found = _skeletons.get(key)
        if found is not None:
            _skeletons.move_to_end(key)
    if found is None or found.templates != templates:
        found = _build_skeletons(templates, names, context)
        with _skeletons_lock:
            _skeletons[key] = found
            while len(_skeletons) > SKELETONS_KEPT:
                _skeletons.popitem(last=False)
    text = (
        found.text.fill(personal)
        if found.text is not None
        else templates[0].render(**context, **personal)
    )
    if found.html is not None:
        html = found.html.fill({name: str(escape(value)) for name, value in personal.items()})
    else:
        html = templates[1].render(**context, **personal)
    return text, html
