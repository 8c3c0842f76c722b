"""The code's shape, checked: one owner per table, no import cycles, no hidden imports, small files.

These are the rules README's "Layout" section states. They read the source as text and syntax
trees (nothing is imported or run), so they are fast and say exactly which line breaks a rule.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
SOURCES = sorted(APP.rglob("*.py"))

# Command-line entry points import their work lazily so `chorus --help` starts quickly.
LAZY_IMPORTS_ALLOWED = {"cli.py", "commands.py"}
MAX_LINES = 600
DUPLICATE_WINDOW = 10


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(node: ast.AST, current: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = current.split(".")
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base)
            module = f"{prefix}.{node.module}" if node.module else prefix
        else:
            module = node.module or ""
        return [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return []


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Imports that run when the module is imported (not under TYPE_CHECKING)."""
    found: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if "TYPE_CHECKING" not in test:
                found.extend(n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))
        elif isinstance(node, ast.Try):
            found.extend(n for n in node.body if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def _module_file(module: str) -> str | None:
    """The app module a dotted name imports, if it is one of ours (a package means its __init__)."""
    path = ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return module
    if (path / "__init__.py").is_file():
        return module
    return None


def _module_graph() -> dict[str, set[str]]:
    """Which app module imports which, at import time (what a cycle would break)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES:
        current = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _top_level_imports(tree):
            for module in _imported_modules(node, current, path.name == "__init__.py"):
                if module.split(".")[0] != "app":
                    continue
                target = _module_file(module)
                if target and target != current and target != "app":
                    graph[current].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    # The checker itself can fail: a two-package loop is reported.
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycle_between_app_modules() -> None:
    cycles = _cycles(_module_graph())
    assert not cycles, f"import cycles between app modules: {cycles}"


def test_no_app_import_inside_a_function() -> None:
    offenders = []
    for path in SOURCES:
        if path.name in LAZY_IMPORTS_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                modules = _imported_modules(node, _module_name(path), path.name == "__init__.py")
                if any(m.split(".")[0] == "app" for m in modules):
                    offenders.append(f"{_rel(path)}:{node.lineno}")  # type: ignore[attr-defined]
    assert not offenders, f"app code imported inside a function: {offenders}"


def test_no_file_over_the_size_limit() -> None:
    big = {
        _rel(p): n
        for p in SOURCES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"files over {MAX_LINES} lines: {big}"


def _normalised_lines(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((number, stripped))
    return lines


def test_no_block_of_identical_lines_twice() -> None:
    seen: dict[str, str] = {}
    repeats: list[str] = []
    for path in SOURCES:
        lines = _normalised_lines(path)
        last_end = -1
        for i in range(len(lines) - DUPLICATE_WINDOW + 1):
            window = lines[i : i + DUPLICATE_WINDOW]
            digest = hashlib.sha1(  # noqa: S324 (a fingerprint, not security)
                "\n".join(text for _, text in window).encode()
            ).hexdigest()
            place = f"{_rel(path)}:{window[0][0]}"
            if digest in seen and seen[digest] != place:
                if window[0][0] > last_end:  # one report per repeated run
                    repeats.append(f"{place} repeats {seen[digest]}")
                last_end = window[-1][0]
            else:
                seen.setdefault(digest, place)
    assert not repeats, f"{DUPLICATE_WINDOW}+ identical lines twice: {repeats}"


# Which module may write each table (the statement forms SQLAlchemy and raw SQL use).
OWNERS = {
    "Signature": ("app/signatures/",),
    "SignatureTally": ("app/signatures/tally.py",),
    "SignatureHourlyTally": ("app/signatures/tally.py",),
    "OutboxMessage": ("app/email/outbox.py",),
}
_WRITE = r"\b(?:update|insert|sql_insert|pg_insert|sqlite_insert|delete)\(\s*{model}\b"
_RAW = {
    "Signature": re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+signature\b", re.I),
    "SignatureTally": re.compile(
        r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+signature_tally\b", re.I
    ),
    "SignatureHourlyTally": re.compile(
        r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+signature_hourly_tally\b", re.I
    ),
    "OutboxMessage": re.compile(
        r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+outbox_message\b", re.I
    ),
}


@pytest.mark.parametrize(
    "model",
    ["Signature", "SignatureTally", "SignatureHourlyTally", "OutboxMessage"],
)
def test_each_table_is_written_only_by_its_owner(model: str) -> None:
    pattern = re.compile(_WRITE.format(model=model))
    offenders = []
    for path in SOURCES:
        rel = _rel(path)
        if rel.startswith(OWNERS[model]):
            continue
        text = path.read_text(encoding="utf-8")
        for match in [*pattern.finditer(text), *_RAW[model].finditer(text)]:
            offenders.append(f"{rel}:{text.count(chr(10), 0, match.start()) + 1}")
    assert not offenders, f"{model} written outside {OWNERS[model]}: {offenders}"


# Helpers every domain uses; each is defined in app/core/ and borrowed from no domain.
GENERIC_HELPERS = {
    "field_problem",
    "invalid",
    "refuse_nulls",
    "merge_translations",
    "check_default_locale",
    "flush_unique",
    "check_email",
    "normalise_email",
    "check_country",
    "COUNTRY_CODES",
    "neutralise",
    "iso_utc",
    "FORMULA_PREFIXES",
    "UTF8_BOM",
}


def _domain(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_generic_helpers_come_from_core() -> None:
    offenders = []
    for path in SOURCES:
        current = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        foreign: set[str] = set()  # names bound to another domain's module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                source = node.module
                if source.startswith("app.") and _domain(source) not in ("core", _domain(current)):
                    for alias in node.names:
                        if alias.name in GENERIC_HELPERS:
                            offenders.append(f"{_rel(path)}:{node.lineno} {alias.name}")
                        elif _module_file(f"{source}.{alias.name}"):
                            foreign.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in foreign
                and node.attr in GENERIC_HELPERS
            ):
                offenders.append(f"{_rel(path)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not offenders, f"generic helpers taken from another domain: {offenders}"
