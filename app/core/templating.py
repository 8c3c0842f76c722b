"""Jinja2 environments: one for pages, one (sandboxed) for e-mails; e-mails to many people
rendered once per (template, language, shared values) and filled in per recipient."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cache, partial
from string import Formatter
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    nodes,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from app.core.config import ROOT
from app.core.i18n import FALLBACK, LANGUAGE_NAMES, catalog, number, translate

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
# recipient's values go, and fills the markers in for each message: the text as it is, the HTML
# escaped as autoescaping would. Only where that is sure to give what rendering whole gives:
# - read from the templates (those they extend and include too): every use of a recipient's
#   value prints it as it is, `{{ name }}`, or hands it to a translation, `t("key", name=name)`,
#   whose text (in that language and the fallback) places it as a bare `{name}`. A filter, a
#   test (`{% if name %}`, its length), an assignment or a format spec (`{name:.10}`) is
#   anything else;
# - and rendered: two more renderings (other markers, with every character HTML escapes; empty
#   values) equal the first one filled in (a shared value holding the markers' characters).
# A file that fails either is rendered whole for every message, as before.
# tests/email/test_render_once.py holds the result to a whole rendering, byte for byte.

# Private-use characters: in no template or translation, and the values filled in are never
# searched for them again (the skeleton is split at the markers once).
_OPEN, _CLOSE = "\ue000", "\ue001"
_ESCAPED_PROBE = "<&\"'>"  # every character HTML escaping changes
SKELETONS_KEPT = 256  # (template, language, shared values) renderings kept per process
# How often a kept rendering asks whether its template files changed on disk (auto_reload:
# each asking stats every file, which was a twentieth of a mail worker's CPU per e-mail).
TEMPLATE_CHECK_SECONDS = 1.0


def _marker(name: str, probe: str = "") -> str:
    return f"{_OPEN}{probe}{name}{_CLOSE}"


def _sources(env: SandboxedEnvironment, name: str) -> list[tuple[str, nodes.Template]] | None:
    """The template `name` and those it extends, includes or imports, parsed; None where one
    of them is named by an expression (it could be any)."""
    found: list[tuple[str, nodes.Template]] = []
    todo = [name]
    while todo:
        current = todo.pop()
        if any(current == seen for seen, _ in found):
            continue
        assert env.loader is not None
        source, _, _ = env.loader.get_source(env, current)
        tree = env.parse(source, current)
        found.append((current, tree))
        kinds = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
        for node in tree.find_all(kinds):
            named: Any = getattr(node, "template", None)
            if not isinstance(named, nodes.Const) or not isinstance(named.value, str):
                return None
            todo.append(named.value)
    return found


def _placed_plainly(key: str, value: str, locale: str) -> bool:
    """Whether the translation `key` places `value` as a bare `{value}` in every form it has
    in `locale` and in the fallback language (translate takes one or the other)."""
    for source in (locale, FALLBACK):
        entry = catalog(source).get(key, key)
        for text in entry.values() if isinstance(entry, dict) else [entry]:
            try:
                fields = list(Formatter().parse(text))
            except ValueError:
                return False
            for _, field, spec, conversion in fields:
                if field is None or re.split(r"[.\[]", field)[0] != value:
                    continue
                if field != value or spec or conversion:
                    return False
    return True


def _prints_plainly(trees: list[nodes.Template], names: tuple[str, ...], locale: str) -> bool:
    """Whether every use of `names` in `trees` prints the value as it is (see above)."""
    uses = plain = 0
    for tree in trees:
        uses += sum(1 for node in tree.find_all(nodes.Name) if node.name in names)
        for output in tree.find_all(nodes.Output):
            plain += sum(1 for n in output.nodes if isinstance(n, nodes.Name) and n.name in names)
        for call in tree.find_all(nodes.Call):
            if not (
                isinstance(call.node, nodes.Name)
                and call.node.name == "t"
                and call.args
                and isinstance(call.args[0], nodes.Const)
                and isinstance(call.args[0].value, str)
            ):
                continue
            key = call.args[0].value
            for keyword in call.kwargs:
                if (
                    isinstance(keyword.value, nodes.Name)
                    and keyword.value.name in names
                    and keyword.key == keyword.value.name
                    and _placed_plainly(key, keyword.key, locale)
                ):
                    plain += 1
    return uses == plain


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


@dataclass
class _Skeletons:
    files: tuple[str, ...]  # every template file the renderings read
    templates: tuple[Template, ...]  # each as loaded then (a file changed on disk reloads)
    text: _Skeleton | None  # None: this file is rendered whole for each message
    html: _Skeleton | None
    checked_at: float = dataclasses.field(default_factory=time.monotonic)

    def current(self, env: SandboxedEnvironment) -> bool:
        """Whether no file they were made from has changed since (auto_reload), as seen at
        most TEMPLATE_CHECK_SECONDS ago."""
        now = time.monotonic()
        if now - self.checked_at < TEMPLATE_CHECK_SECONDS:
            return True
        self.checked_at = now  # (renderers in threads: at worst two of them look)
        return all(
            env.get_template(name) is template
            for name, template in zip(self.files, self.templates, strict=True)
        )


_skeletons: OrderedDict[tuple[Hashable, ...], _Skeletons] = OrderedDict()
_skeletons_lock = threading.Lock()  # (renderers run in worker threads)


def _skeleton(
    template: Template,
    trees: list[tuple[str, nodes.Template]] | None,
    names: tuple[str, ...],
    context: dict[str, Any],
    *,
    escape_values: bool,
) -> _Skeleton | None:
    """`template` rendered once with markers, if filling them in gives a whole rendering."""
    if trees is None or not _prints_plainly([tree for _, tree in trees], names, context["locale"]):
        return None
    probes = {name: _marker(name, _ESCAPED_PROBE) for name in names}
    empty = dict.fromkeys(names, "")
    try:
        skeleton = _Skeleton.of(
            template.render(**context, **{name: _marker(name) for name in names}), names
        )
    except ValueError:
        return None
    filled = {n: str(escape(v)) for n, v in probes.items()} if escape_values else probes
    if skeleton.fill(filled) != template.render(**context, **probes):
        return None
    if skeleton.fill(empty) != template.render(**context, **empty):
        return None
    return skeleton


def _build_skeletons(
    env: SandboxedEnvironment, template: str, names: tuple[str, ...], context: dict[str, Any]
) -> _Skeletons:
    text_name, html_name = f"{template}.txt", f"{template}.html"
    text_trees, html_trees = _sources(env, text_name), _sources(env, html_name)
    read = [name for name, _ in [*(text_trees or []), *(html_trees or [])]]
    loaded = {name: env.get_template(name) for name in [text_name, html_name, *read]}
    return _Skeletons(
        tuple(loaded),
        tuple(loaded.values()),
        _skeleton(loaded[text_name], text_trees, names, context, escape_values=False),
        _skeleton(loaded[html_name], html_trees, names, context, escape_values=True),
    )


def render_email_for(
    template: str, *, locale: str, personal: dict[str, str], **shared: Hashable
) -> tuple[str, str]:
    """render_email(template, t=..., locale=locale, **personal, **shared), for one of many
    recipients of the same e-mail: `personal` holds the values that are theirs (a name, their
    own links), `shared` what every recipient of it shares (hashable: the rendering is kept
    for them). Returns (text, html), the same as rendering whole."""
    env = email_environment()
    names = tuple(sorted(personal))
    # (Each value's type too: 1, 1.0 and True are equal keys, and render differently.)
    values = tuple((name, type(value), value) for name, value in sorted(shared.items()))
    key = (template, locale, names, values)
    context: dict[str, Any] = {"t": partial(translate, locale), "locale": locale, **shared}
    with _skeletons_lock:
        found = _skeletons.get(key)
        if found is not None:
            _skeletons.move_to_end(key)
    if found is None or not found.current(env):
        found = _build_skeletons(env, template, names, context)
        with _skeletons_lock:
            _skeletons[key] = found
            while len(_skeletons) > SKELETONS_KEPT:
                _skeletons.popitem(last=False)
    if found.text is not None:
        text = found.text.fill(personal)
    else:
        text = env.get_template(f"{template}.txt").render(**context, **personal)
    if found.html is not None:
        html = found.html.fill({name: str(escape(value)) for name, value in personal.items()})
    else:
        html = env.get_template(f"{template}.html").render(**context, **personal)
    return text, html
