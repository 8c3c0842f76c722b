"""Cells of CSV files that people open in a spreadsheet."""

from __future__ import annotations

import re

UTF8_BOM = "\ufeff"  # without it, Excel reads a CSV as the local code page: Hangul turns to noise

# A code a spreadsheet would take for a number or a date: digits, perhaps with spaces or hyphens.
_NUMBER_LIKE = re.compile(r"[0-9][0-9 -]*")


def as_text(value: str) -> str:
    """A code that must stay as written (a postcode: 01001, 02134-1234, 100-0001) kept as text.

    Spreadsheets read such a cell as a number and drop its leading zeros (01001 -> 1001), or as
    a date. A leading apostrophe, the mark spreadsheets take for "this is text" (the same one
    that keeps formulas from running, see app/exports), keeps it as written; no formula involved.
    """
    return "'" + value if _NUMBER_LIKE.fullmatch(value) else value
