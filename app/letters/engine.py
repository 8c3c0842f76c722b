"""Organisers' letter templates: checked when saved, rendered in a locked-down sandbox.

Templates are Jinja2 written by organisers, so they are untrusted code. They run in Jinja's
immutable sandbox, tightened further:
- they only see plain dictionaries of strings and numbers, and `a.b` only ever looks up a
  dictionary key: no Python attribute or method at all (so no `''.__class__`, no
  `str.format`), no globals, no loader (no files), a short list of filters;
- no `{% set %}`, macros, includes or nested loops, and loops only over the variables given;
  `*`, `+`, `**` and `%` are checked so no value grows huge, and the output is cut off at
  MAX_OUTPUT characters while it is produced. So a template cannot reach Python, and cannot
  make a worker spin or swell either.
Saving checks a template first and tries it once: a syntax error, an unknown variable or
field, a reach for internals or a forbidden construct is a 422 with the line and the problem.
"""

from __future__ import annotations

import math
import operator
import re
import traceback
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.i18n import long_date, number, plural_category
from app.letters.models import TemplateKind

MAX_OUTPUT = 100_000  # characters of rendered text
MAX_REPEAT = 10_000  # characters or items one operation may produce
MAX_INT_BITS = 1024

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
    "annex_url": [],  # empty when the list is attached
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
# Fields of the items of a list field: {% for row in delivery.countries %}{{ row.name }}.
ITEM_FIELDS = {("delivery", "countries"): DELIVERY["countries"]}
LOOP_FIELDS = ("index", "index0", "revindex", "first", "last", "length")
FILTERS = (
    "abs capitalize count d default e escape first float int join last length lower max min "
    "reverse round sort string striptags sum title trim unique upper wordcount"
).split()
FORBIDDEN = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Extends: "extends",
    nodes.Block: "block",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Assign: "set",
    nodes.AssignBlock: "set",
    nodes.With: "with",
}


class TemplateProblem(Exception):
    def __init__(self, problems: list[tuple[str, int | None, str]]) -> None:
        super().__init__("; ".join(p[2] for p in problems))
        self.problems = problems  # (part, line, problem)


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_REPEAT:
        raise SecurityError("a value in the template grows too long")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError("a number in the template grows too large")
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `a.b` is a dictionary lookup and nothing else: no Python attribute, no method.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, LoopContext) and attribute in LOOP_FIELDS:
            return getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        if isinstance(obj, list | tuple | str) and isinstance(argument, int | slice):
            try:
                return obj[argument]
            except IndexError:
                pass
        return self.undefined(obj=obj, name=str(argument))

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        for value in (left, right):
            _check_size(value)
        if operator_ == "%":
            if isinstance(left, str):
                raise SecurityError("string formatting with % is not allowed")
            return operator.mod(left, right)
        if operator_ == "**":
            if not isinstance(right, int | float) or abs(right) > 100:
                raise SecurityError("the exponent is too large")
            if isinstance(left, int | float) and abs(left) > 1:
                if abs(right) * math.log2(abs(left)) > MAX_INT_BITS:
                    raise SecurityError("a number in the template grows too large")
            return operator.pow(left, right)
        if operator_ == "*":
            for value, times in ((left, right), (right, left)):
                if isinstance(value, str | list | tuple) and isinstance(times, int):
                    if len(value) * times > MAX_REPEAT:
                        raise SecurityError("a value in the template grows too long")
            return _check_size(operator.mul(left, right))
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            if len(left) + len(right) > MAX_REPEAT:
                raise SecurityError("a value in the template grows too long")
        return _check_size(operator.add(left, right))


# The letter's language, for the filters that write numbers and plurals its way. A template
# cannot name it: names it uses are checked against VARIABLES, and `_…` is refused.
LANGUAGE = "__language__"


@pass_context
def _number(context: Context, value: Any) -> str:
    """12345 -> 12,345 (en, ko), 12 345 (uk, with a no-break space)."""
    return number(value, context.get(LANGUAGE, "en"))


@pass_context
def _plural(
    context: Context,
    value: Any,
    *,
    other: str,
    zero: str | None = None,
    one: str | None = None,
    two: str | None = None,
    few: str | None = None,
    many: str | None = None,
) -> str:
    """`{{ n|plural(one="signature", other="signatures") }}`: the form for n by the letter's
    language's CLDR plural rules (Ukrainian also has `few` and `many`)."""
    forms = {"zero": zero, "one": one, "two": two, "few": few, "many": many}
    return forms.get(plural_category(context.get(LANGUAGE, "en"), value)) or other


def _environment(*, html: bool) -> _Sandbox:
    env = _Sandbox(autoescape=html, undefined=StrictUndefined, loader=None)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), namespace(): nothing to call
    env.filters = {name: env.filters[name] for name in FILTERS}
    env.filters["number"] = _number  # 12345 -> 12,345, as the letter's language writes it
    env.filters["plural"] = _plural
    return env


TEXT = _environment(html=False)
HTML = _environment(html=True)


def _field_path(node: nodes.Node) -> tuple[str, ...] | None:
    """("delivery", "countries") for `delivery.countries`; None for anything else."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = _field_path(node.node)
        return (*base, node.attr) if base else None
    return None


def _walk(tree: nodes.Node, kind: TemplateKind, part: str) -> list[tuple[str, int | None, str]]:
    allowed = dict(VARIABLES[kind])
    problems: list[tuple[str, int | None, str]] = []

    def add(node: nodes.Node, text: str) -> None:
        problems.append((part, node.lineno, text))

    for node_type, label in FORBIDDEN.items():
        for found in tree.find_all(node_type):
            add(found, f"{{% {label} %}} is not allowed in a letter template")
    for loop in tree.find_all(nodes.For):
        if any(True for _ in loop.find_all(nodes.For)):
            add(loop, "loops inside loops are not allowed")
        path = _field_path(loop.iter)
        if path is None or path[0] not in allowed:
            add(loop, "a loop may only go over a variable, such as delivery.countries")
        elif isinstance(loop.target, nodes.Name):
            allowed[loop.target.name] = list(ITEM_FIELDS.get(path, []))  # type: ignore[arg-type]
        else:
            add(loop, "a loop takes one item at a time: {% for row in delivery.countries %}")
    if any(True for _ in tree.find_all(nodes.For)):
        allowed["loop"] = list(LOOP_FIELDS)
    for filter_ in tree.find_all(nodes.Filter):
        if filter_.name not in TEXT.filters:
            add(
                filter_,
                f"unknown filter '{filter_.name}' (filters: {', '.join(sorted(TEXT.filters))})",
            )
    for getattr_ in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr: Any = None
        if isinstance(getattr_, nodes.Getattr):
            attr = getattr_.attr
        elif isinstance(getattr_, nodes.Getitem) and isinstance(getattr_.arg, nodes.Const):
            attr = getattr_.arg.value
        if isinstance(attr, str) and attr.startswith("_"):
            add(getattr_, f"access to '{attr}' is not allowed")
            continue
        base = getattr(getattr_, "node", None)
        if isinstance(base, nodes.Name) and base.name in allowed and isinstance(attr, str):
            fields = allowed[base.name]
            if attr not in fields:
                known = ", ".join(fields) or "none"
                add(getattr_, f"unknown field '{base.name}.{attr}' (its fields: {known})")
    for call in tree.find_all(nodes.Call):
        add(call, "calling functions or methods is not allowed")
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in allowed:
            add(name, f"unknown variable '{name.name}' (variables: {', '.join(VARIABLES[kind])})")
    return problems


def _line_of(exc: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to point there)."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def check(kind: TemplateKind, *, subject: str, body: str) -> None:
    """Raise TemplateProblem listing every problem found, with its line."""
    problems: list[tuple[str, int | None, str]] = []
    for part, source in (("subject", subject), ("body", body)):
        try:
            tree = TEXT.parse(source)
        except Exception as exc:  # a syntax error, or nesting too deep to parse
            message = getattr(exc, "message", None) or type(exc).__name__
            problems.append((part, _line_of(exc), f"syntax error: {message}"))
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
        chunks: list[str] = []
        size = 0
        for chunk in env.from_string(source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError("the rendered letter is too long")
            chunks.append(chunk)
        return "".join(chunks)
    except Exception as exc:  # whatever a template does wrong, it is the template's problem
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise TemplateProblem([(part, _line_of(exc), message)]) from exc


_BLANKS = re.compile(r"[ \t\n\r\f\v]+")


def render(subject: str, body: str, context: dict[str, Any], *, language: str = "en") -> Rendered:
    """Render a checked template: a one-line subject, a text body and an HTML body."""
    context = {**context, LANGUAGE: language}
    text = _render(TEXT, body, context, "body").strip()
    html_body = _render(HTML, body, context, "body").strip()
    # One line; no-break spaces (1 000 in Ukrainian) stay, which str.split() would not keep.
    rendered_subject = _BLANKS.sub(" ", _render(TEXT, subject, context, "subject")).strip()
    html = f'<div style="white-space: pre-wrap; font-family: serif">{html_body}</div>'
    return Rendered(subject=rendered_subject[:500], text=text, html=html)


def format_date(day: date, language: str) -> str:
    """A date as a letter in `language` writes it (Babel: 30 November 2026, 2026년 11월 30일)."""
    return long_date(day, language)
