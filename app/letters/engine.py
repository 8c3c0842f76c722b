"""Organisers' letter templates: checked when saved, rendered in a locked-down sandbox.

Templates are Jinja2 written by organisers, so they are untrusted code. They run in Jinja's
immutable sandbox, tightened further:
- they only see plain dictionaries of strings and numbers, and `a.b` only ever looks up a
  dictionary key: no Python attribute or method at all (so no `''.__class__`, no
  `str.format`), no globals, no loader (no files), a short list of filters;
- no `{% set %}`, macros, includes, `{% autoescape %}` or nested loops, loops only over the
  lists given, and expressions at most MAX_NESTING levels deep;
- every render runs on a budget, checked while it runs: each lookup, operator, filter call and
  loop turn spends steps, and so does every character a filter, `~` or the output handles;
  past MAX_WORK steps or RENDER_SECONDS of wall-clock time it stops with a problem. `*`, `+`,
  `**`, `%` and `~` are checked so no value grows huge, and the output is cut off at
  MAX_OUTPUT characters. So a template cannot reach Python, and cannot make a worker or a
  request thread spin or swell either.
Saving checks a template first and tries it twice (with made-up values, then with the longest
message and list real letters may bring): a syntax error, an unknown variable or field, a reach
for internals, a forbidden construct or a template over its budget is a 422 with the line and
the problem.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context, pass_eval_context
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from app.core.i18n import long_date, number, plural_category
from app.letters.models import TemplateKind

MAX_OUTPUT = 100_000  # characters of rendered text
MAX_VALUE = MAX_OUTPUT  # characters or items one value (a `~` or a filter's result) may have
MAX_REPEAT = 10_000  # characters or items `*` and `+` may produce
MAX_INT_BITS = 1024
# Levels of a template's syntax tree: a letter needs a dozen; 2,000 chained `+` or 1,500
# chained filters made the checks and the compiler recurse until Python gave up (a 500).
MAX_NESTING = 40
# The budget of one letter (its subject, text and HTML together). A step is about a character
# handled; each lookup, operator, filter call or loop turn costs STEP steps, and the filters
# that do Python work per character (HEAVY_FILTERS) that many steps a character. A long real
# letter takes tens of thousands (a 10,000-character message, 250 countries); at 2 million
# (a few hundredths of a second of ordinary work) it stops.
MAX_WORK = 2_000_000
STEP = 50
HEAVY_FILTERS = {"max": 20, "min": 20, "sort": 20, "striptags": 20, "title": 20, "unique": 20}
LIGHT_FILTERS = frozenset("abs count d default first float int last length number round".split())
# Wall-clock time a letter may take to render, checked by the same hooks: a preview or a
# worker stops there even when the machine is too busy for the steps to tell.
RENDER_SECONDS = 2.0
# The longest message a supporter may write (LetterCreate) and the most rows a list may have
# (delivery.countries: one per country): a template is tried on them when it is saved.
LONGEST_MESSAGE = 10_000
LONGEST_LIST = 250

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
FORBIDDEN: dict[type[nodes.Node], str] = {
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
    # `{% autoescape false %}` would put a supporter's text unescaped into the HTML letter.
    nodes.EvalContextModifier: "autoescape",
}


class TemplateProblem(Exception):
    def __init__(self, problems: list[tuple[str, int | None, str]]) -> None:
        super().__init__("; ".join(p[2] for p in problems))
        self.problems = problems  # (part, line, problem)

    def describe(self) -> str:
        """Every problem with its part and line: "body, line 3: ..."."""
        return "; ".join(
            f"{part}, line {line}: {text}" if line else f"{part}: {text}"
            for part, line, text in self.problems
        )


class BudgetExceeded(SecurityError):
    """A render went over its budget of work or time."""


@dataclass
class _Budget:
    steps_left: int
    deadline: float

    def spend(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise BudgetExceeded(
                f"the template does too much work (more than {MAX_WORK:,} steps: a loop or "
                "filter over long texts?)"
            )
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"the template takes too long to render (more than {RENDER_SECONDS:g} seconds)"
            )


# The budget of the render running in this thread (or task): the sandbox's hooks spend it.
_BUDGET: ContextVar[_Budget | None] = ContextVar("letter_budget", default=None)


def _spend(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is None:  # a template evaluated outside render() would run unmetered
        raise SecurityError("letter templates are only rendered on a budget")
    budget.spend(steps)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 1


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
        _spend(STEP)
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, LoopContext) and attribute in LOOP_FIELDS:
            return getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend(STEP)
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        if isinstance(obj, list | tuple | str) and isinstance(argument, int | slice):
            try:
                item = obj[argument]
            except IndexError:
                pass
            else:
                _spend(_size(item))  # (a slice copies)
                return item
        return self.undefined(obj=obj, name=str(argument))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _spend(STEP)  # (calls are refused when a template is saved)
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        result = self._binop(operator_, left, right)
        _spend(STEP + _size(result))
        return result

    def _binop(self, operator_: str, left: Any, right: Any) -> Any:
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


def _metered(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that spends the budget on what it is given and what it gives back."""
    weight = HEAVY_FILTERS.get(name, 0 if name in LIGHT_FILTERS else 1)
    # Filters that take the environment or evaluation context get it before the value.
    first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)  # (keeps jinja_pass_arg: Jinja passes what the filter expects)
    def metered(*args: Any, **kwargs: Any) -> Any:
        _spend(STEP + weight * (_size(args[first]) if len(args) > first else 0))
        result = func(*args, **kwargs)
        _spend(_size(result))
        if _size(result) > MAX_VALUE:
            raise SecurityError("a value in the template grows too long")
        return result

    return metered


def _join(func: Callable[..., Any]) -> Callable[..., Any]:
    """`join`, refused before it builds a value too long: 10,000 characters joined with a
    10,000-character separator would make a hundred million."""

    @functools.wraps(func)
    def join(eval_ctx: EvalContext, value: Iterable[Any], d: Any = "", *args: Any) -> Any:
        items = value if isinstance(value, str) else list(value)
        size = len(items) if isinstance(items, str) else sum(len(str(i)) for i in items)
        _spend(STEP + size)
        if size + len(str(d)) * max(len(items) - 1, 0) > MAX_VALUE:
            raise SecurityError("a value in the template grows too long")
        return func(eval_ctx, items, d, *args)

    return join


def _sum(func: Callable[..., Any]) -> Callable[..., Any]:
    """`sum` of numbers only: adding up lists (`start=[]`) copies the total at each item, so
    its work grows with the square of the items, in one call the budget cannot stop."""

    @functools.wraps(func)
    def sum_(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, int | float):
            raise SecurityError("sum adds up numbers only")
        return func(environment, iterable, attribute, start)

    return sum_


# Filters the instrumented templates call, under names no template can use (they start with
# "_", and only FILTERS and "number" pass the checks).
@pass_eval_context
def _concat(eval_ctx: EvalContext, items: list[Any]) -> str:
    """`a ~ b ~ c`: sized before it is built, then joined as Jinja would."""
    size = sum(len(str(item)) for item in items)
    _spend(STEP + size)
    if size > MAX_VALUE:
        raise SecurityError("a value in the template grows too long")
    joined: str = markup_join(items) if eval_ctx.autoescape else str_join(items)
    return joined


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each spending a step of the budget."""
    for item in iterable:
        _spend(STEP)
        yield item


def _environment(*, html: bool) -> _Sandbox:
    # optimized=False: Jinja would otherwise evaluate constant parts while compiling, out of
    # the render's budget.
    env = _Sandbox(autoescape=html, undefined=StrictUndefined, loader=None, optimized=False)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(), namespace(): nothing to call
    chosen: dict[str, Callable[..., Any]] = {name: env.filters[name] for name in FILTERS}
    chosen["join"] = _join(chosen["join"])
    chosen["sum"] = _sum(chosen["sum"])
    chosen["number"] = _number  # 12345 -> 12,345, as the letter's language writes it
    chosen["plural"] = _plural
    env.filters = {name: _metered(name, func) for name, func in chosen.items()}
    env.filters["_concat"] = _concat
    env.filters["_loop"] = _loop
    return env


TEXT = _environment(html=False)
HTML = _environment(html=True)
PUBLIC_FILTERS = sorted([*FILTERS, "number", "plural"])

NESTED_TOO_DEEP = (
    f"expressions are nested too deeply (more than {MAX_NESTING} levels, such as a long chain "
    "of operators or filters): split them up"
)


def _too_deep(tree: nodes.Node) -> nodes.Node | None:
    """The first node deeper than MAX_NESTING, found without recursion (the checks and the
    compiler recurse, so they only ever see trees this has let through)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None


class _Instrument(NodeTransformer):
    """Puts the budget where the sandbox has no hook: each loop's items and each `~`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, "_concat", [], [], None, None, lineno=node.lineno)


@functools.lru_cache(maxsize=256)
def _compiled(html: bool, source: str) -> Template:
    """A template parsed, checked for depth, instrumented and compiled (each letter renders
    its template three times, and most letters share one)."""
    env = HTML if html else TEXT
    tree = env.parse(source)
    deep = _too_deep(tree)
    if deep is not None:
        raise TemplateSyntaxError(NESTED_TOO_DEEP, deep.lineno)
    _Instrument().visit(tree)
    tree.set_environment(env)
    # Compiled outside any budget: Jinja tries constant parts while compiling, and metered
    # filters refuse to run unmetered, so all the work is left for the render.
    token = _BUDGET.set(None)
    try:
        return env.from_string(tree)
    finally:
        _BUDGET.reset(token)


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
        elif path not in ITEM_FIELDS:
            # A loop over a text goes round once per character: with the text inside, the
            # work grows with the square of a supporter's message.
            add(
                loop,
                f"a loop may only go over a list, such as delivery.countries "
                f"('{'.'.join(path)}' is not one)",
            )
        elif isinstance(loop.target, nodes.Name):
            allowed[loop.target.name] = list(ITEM_FIELDS.get(path, []))
        else:
            add(loop, "a loop takes one item at a time: {% for row in delivery.countries %}")
    if any(True for _ in tree.find_all(nodes.For)):
        allowed["loop"] = list(LOOP_FIELDS)
    for filter_ in tree.find_all(nodes.Filter):
        if filter_.name not in PUBLIC_FILTERS:
            add(
                filter_,
                f"unknown filter '{filter_.name}' (filters: {', '.join(PUBLIC_FILTERS)})",
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
        deep = _too_deep(tree)
        if deep is not None:
            problems.append((part, deep.lineno, NESTED_TOO_DEEP))
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


def _render(html: bool, source: str, context: dict[str, Any], part: str) -> str:
    try:
        chunks: list[str] = []
        size = 0
        for chunk in _compiled(html, source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError("the rendered letter is too long")
            _spend(len(chunk))
            chunks.append(chunk)
        return "".join(chunks)
    except Exception as exc:  # whatever a template does wrong, it is the template's problem
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise TemplateProblem([(part, _line_of(exc), message)]) from exc


_BLANKS = re.compile(r"[ \t\n\r\f\v]+")


def render(subject: str, body: str, context: dict[str, Any], *, language: str = "en") -> Rendered:
    """Render a checked template: a one-line subject, a text body and an HTML body.

    The three share one budget (MAX_WORK steps, RENDER_SECONDS): past it, TemplateProblem.
    """
    context = {**context, LANGUAGE: language}
    token = _BUDGET.set(_Budget(MAX_WORK, time.monotonic() + RENDER_SECONDS))
    try:
        text = _render(False, body, context, "body").strip()
        html_body = _render(True, body, context, "body").strip()
        # One line; no-break spaces (1 000 in Ukrainian) stay, which str.split() would not keep.
        rendered_subject = _BLANKS.sub(" ", _render(False, subject, context, "subject")).strip()
    finally:
        _BUDGET.reset(token)
    html = f'<div style="white-space: pre-wrap; font-family: serif">{html_body}</div>'
    return Rendered(subject=rendered_subject[:500], text=text, html=html)


# What the longest-message trial writes: words, markup and entities, as real letters may hold.
_LONG_TEXT = "Please do not send them back. <b>Protect</b> them &amp; their families.\n\n"


def longest(context: dict[str, Any]) -> dict[str, Any]:
    """`context` with the longest message a supporter may write and every list as long as
    it may be: what a template is tried on, when saved, to see real letters fit its budget."""
    grown = dict(context)
    if "message" in grown:
        repeats = LONGEST_MESSAGE // len(_LONG_TEXT) + 1
        grown["message"] = (_LONG_TEXT * repeats)[:LONGEST_MESSAGE]
    for (variable, field), _fields in ITEM_FIELDS.items():
        value = grown.get(variable)
        if isinstance(value, dict) and value.get(field):
            rows = value[field]
            grown[variable] = {**value, field: (rows * LONGEST_LIST)[:LONGEST_LIST]}
    return grown


def try_longest(subject: str, body: str, context: dict[str, Any], *, language: str = "en") -> None:
    """Render on `longest(context)`; TemplateProblem saying so when that fails."""
    try:
        render(subject, body, longest(context), language=language)
    except TemplateProblem as exc:
        raise TemplateProblem(
            [
                (part, line, f"{text} (with a {LONGEST_MESSAGE:,}-character message)")
                for part, line, text in exc.problems
            ]
        ) from exc


def format_date(day: date, language: str) -> str:
    """A date as a letter in `language` writes it (Babel: 30 November 2026, 2026년 11월 30일)."""
    return long_date(day, language)
