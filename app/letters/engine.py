"""Organisers' letter templates: checked when saved, rendered in a locked-down sandbox.

Templates are Jinja2 written by organisers, so they are untrusted code. They run in Jinja's
immutable sandbox (no attribute that starts with an underscore, no mutation of what they are
given, no access to files, modules or the network: the environment has no loader and no
globals), with limits on repetition and output size, and only ever see plain dictionaries of
strings and numbers. Saving checks them first: a syntax error, an unknown variable or field, a
reach for internals (`''.__class__`) or an include is a 422 with the line and the problem.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.letters.models import TemplateKind

MAX_OUTPUT = 100_000  # characters of rendered text
MAX_REPEAT = 10_000  # characters or items one `*` may produce

SUPPORTER = ["name", "city", "country", "country_code"]
TARGET = ["name", "role", "organisation", "country"]
PETITION = ["title", "url", "confirmed_count", "goal"]
CAMPAIGN = ["name"]
DELIVERY: dict[str, list[str]] = {
    "number": [],
    "confirmed_count": [],
    "countries": ["country", "name", "count"],
    "annex_filename": [],
    "annex_sha256": [],
    "annex_rows": [],
}

# Variable -> the fields it has (an empty list: a plain value).
VARIABLES: dict[TemplateKind, dict[str, list[str]]] = {
    TemplateKind.supporter: {
        "supporter": SUPPORTER,
        "target": TARGET,
        "petition": PETITION,
        "campaign": CAMPAIGN,
        "date": [],
        "message": [],
    },
    TemplateKind.delivery: {
        "target": TARGET,
        "petition": PETITION,
        "campaign": CAMPAIGN,
        "date": [],
        "delivery": list(DELIVERY),
    },
}
# Fields of the items of a list field (delivery.countries -> each has country, name, count).
ITEM_FIELDS = {("delivery", "countries"): DELIVERY["countries"]}


class TemplateProblem(Exception):
    def __init__(self, problems: list[tuple[str, int | None, str]]) -> None:
        super().__init__("; ".join(p[2] for p in problems))
        self.problems = problems  # (part, line, problem)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` kept from building huge values."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("the exponent is too large")
            return operator.pow(left, right)
        for value, times in ((left, right), (right, left)):
            if isinstance(value, str | list | tuple) and isinstance(times, int):
                if len(value) * times > MAX_REPEAT:
                    raise SecurityError("the repeated value is too long")
        return operator.mul(left, right)


def _environment(*, html: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=html,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        loader=None,
    )
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), ...: nothing to reach for
    return env


TEXT = _environment(html=False)
HTML = _environment(html=True)


def _walk(node: nodes.Node, kind: TemplateKind, part: str) -> list[tuple[str, int | None, str]]:
    allowed = VARIABLES[kind]
    problems: list[tuple[str, int | None, str]] = []
    local_names: set[str] = set()
    for found in node.find_all((nodes.For, nodes.Assign, nodes.Macro, nodes.With)):
        for target in found.find_all(nodes.Name):
            if target.ctx in ("store", "param"):
                local_names.add(target.name)
    for found in node.find_all(
        (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.Macro, nodes.CallBlock)
    ):
        what = type(found).__name__.lower()
        problems.append((part, found.lineno, f"{what} is not allowed in a letter template"))
    # attr('__class__'), map(attribute='__class__'), ...: filters that look attributes up.
    for filter_ in node.find_all((nodes.Filter, nodes.Call)):
        assert isinstance(filter_, nodes.Filter | nodes.Call)
        arguments = [*filter_.args, *(k.value for k in filter_.kwargs)]
        for argument in arguments:
            if isinstance(argument, nodes.Const) and str(argument.value).startswith("_"):
                problems.append(
                    (part, filter_.lineno, f"access to '{argument.value}' is not allowed")
                )
    for getattr_ in node.find_all((nodes.Getattr, nodes.Getitem)):
        attr: Any = None
        if isinstance(getattr_, nodes.Getattr):
            attr = getattr_.attr
        elif isinstance(getattr_, nodes.Getitem) and isinstance(getattr_.arg, nodes.Const):
            attr = getattr_.arg.value
        base = getattr(getattr_, "node", None)
        if isinstance(attr, str) and attr.startswith("_"):
            problems.append((part, getattr_.lineno, f"access to '{attr}' is not allowed"))
            continue
        if isinstance(base, nodes.Name) and base.name in allowed and isinstance(attr, str):
            fields = allowed[base.name]
            if attr not in fields:
                known = ", ".join(fields) or "none"
                problems.append(
                    (
                        part,
                        getattr_.lineno,
                        f"unknown field '{base.name}.{attr}' (its fields: {known})",
                    )
                )
    for name in node.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in allowed and name.name not in local_names:
            known = ", ".join(allowed)
            problems.append(
                (part, name.lineno, f"unknown variable '{name.name}' (variables: {known})")
            )
    return problems


def check(kind: TemplateKind, *, subject: str, body: str) -> None:
    """Raise TemplateProblem listing every problem found, with its line."""
    problems: list[tuple[str, int | None, str]] = []
    for part, source in (("subject", subject), ("body", body)):
        try:
            tree = TEXT.parse(source)
        except TemplateSyntaxError as exc:
            problems.append((part, exc.lineno, f"syntax error: {exc.message}"))
            continue
        problems.extend(_walk(tree, kind, part))
    if kind == TemplateKind.supporter and not problems:
        tree = TEXT.parse(body)
        if not any(n.name == "message" for n in tree.find_all(nodes.Name)):
            problems.append(
                ("body", None, "the body must place the supporter's text with {{ message }}")
            )
    if problems:
        raise TemplateProblem(problems)


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


def _render(env: _Sandbox, source: str, context: dict[str, Any], part: str) -> str:
    try:
        output = env.from_string(source).render(context)
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateProblem([(part, getattr(exc, "lineno", None), str(exc))]) from exc
    if len(output) > MAX_OUTPUT:
        raise TemplateProblem([(part, None, "the rendered letter is too long")])
    return output


def render(subject: str, body: str, context: dict[str, Any]) -> Rendered:
    """Render a checked template: a one-line subject, a text body and an HTML body."""
    text = _render(TEXT, body, context, "body").strip()
    html_body = _render(HTML, body, context, "body").strip()
    rendered_subject = " ".join(_render(TEXT, subject, context, "subject").split())
    html = f'<div style="white-space: pre-wrap; font-family: serif">{html_body}</div>'
    return Rendered(subject=rendered_subject[:500], text=text, html=html)


MONTHS = {
    "en": "January February March April May June July August September October November "
    "December".split(),
    "uk": "січня лютого березня квітня травня червня липня серпня вересня жовтня листопада "
    "грудня".split(),
}


def format_date(day: date, language: str) -> str:
    """A date as a letter in `language` writes it."""
    base = language.split("-")[0]
    if base == "ko":
        return f"{day.year}년 {day.month}월 {day.day}일"
    if base == "uk":
        return f"{day.day} {MONTHS['uk'][day.month - 1]} {day.year} р."
    if base == "en":
        return f"{day.day} {MONTHS['en'][day.month - 1]} {day.year}"
    return day.isoformat()
