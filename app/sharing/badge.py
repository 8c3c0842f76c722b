"""The count badge: a small SVG ("petition | 12,345 signatures") other sites show as an image.

Its text is escaped (a title or a translation can hold `<` or `&`), its number written the
badge's language's way, and each text's width measured in the configured fonts (the badge
names DejaVu Sans first; `textLength` makes any other font fill the same width).
"""

from __future__ import annotations

import unicodedata

from markupsafe import escape

from app.core.errors import ProblemError
from app.sharing.card import Typeface

HEIGHT = 20
FONT_SIZE = 11
PADDING = 6
LABEL_FILL = "#555"
VALUE_FILL = "#0b5cad"


def _widths(texts: list[str], font_paths: list[str]) -> list[int]:
    """Each text's width at the badge's size; estimated (wide characters a full em, others
    two thirds of one) when no configured font is installed, so the badge never fails."""
    try:
        typeface = Typeface.of(font_paths)
    except ProblemError:
        return [
            round(
                sum(
                    FONT_SIZE if unicodedata.east_asian_width(c) in "WF" else FONT_SIZE * 2 / 3
                    for c in text
                )
            )
            for text in texts
        ]
    return [round(typeface.width(text, FONT_SIZE)) for text in texts]


def badge_svg(*, label: str, value: str, title: str, font_paths: list[str]) -> str:
    """The badge: `label` on grey, `value` on Chorus blue; `title` is what assistive
    technology reads (and what shows on hover)."""
    label_text, value_text = _widths([label, value], font_paths)
    label_width = label_text + 2 * PADDING
    value_width = value_text + 2 * PADDING
    width = label_width + value_width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<rect width="{label_width}" height="{HEIGHT}" rx="3" fill="{LABEL_FILL}"/>'
        f'<rect x="{label_width}" width="{value_width}" height="{HEIGHT}" rx="3" '
        f'fill="{VALUE_FILL}"/>'
        f'<rect x="{label_width}" width="4" height="{HEIGHT}" fill="{VALUE_FILL}"/>'
        f'<g fill="#fff" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" '
        f'font-size="{FONT_SIZE}" text-anchor="middle">'
        f'<text x="{label_width / 2}" y="14" textLength="{label_text}">{escape(label)}</text>'
        f'<text x="{label_width + value_width / 2}" y="14" textLength="{value_text}">'
        f"{escape(value)}</text></g></svg>"
    )
