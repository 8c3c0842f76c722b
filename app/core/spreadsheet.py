"""Cells of CSV files that people open in a spreadsheet: no formulas, codes kept as written."""

from __future__ import annotations

import re
from datetime import UTC, datetime

UTF8_BOM = "\ufeff"  # without it, Excel reads a CSV as the local code page: Hangul turns to noise

# Characters a spreadsheet may read as the start of a formula, plus tab and carriage return.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# First characters after which a cell may need neutralising (formula starts, or spaces first).
_RISKY_FIRST = frozenset(FORMULA_PREFIXES) | {" "}

# A code a spreadsheet would take for a number or a date: digits, perhaps with spaces or hyphens.
_NUMBER_LIKE = re.compile(r"[0-9][0-9 -]*")


def as_text(value: str) -> str:
    """A code that must stay as written (a postcode: 01001, 02134-1234, 100-0001) kept as text.

    Spreadsheets read such a cell as a number and drop its leading zeros (01001 -> 1001), or as
    a date. A leading apostrophe, the mark spreadsheets take for "this is text" (the same one
    that keeps formulas from running, see neutralise), keeps it as written; no formula involved.
    """
    return "'" + value if _NUMBER_LIKE.fullmatch(value) else value


def neutralise(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection).

    A value starting with =, +, -, @, a tab or a carriage return, also after spaces, gets a
    leading apostrophe, which spreadsheets show as text and do not evaluate.
    """
    if value[:1] in _RISKY_FIRST and value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC, to the second, with a Z: `2026-11-23T09:30:00Z`."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="seconds")[:19] + "Z"
