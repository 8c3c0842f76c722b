"""Fonts on this machine, and which of them draws each character of a text.

Printable letters (app/letters/pdf.py) and share images (app/sharing/card.py) use one list of
font files (PDF_FONTS), first choice first: no single free font covers Latin, Cyrillic and Hangul
well, so a text is cut into runs, each drawn in the first font that has its characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont


@cache
def installed(paths: tuple[str, ...]) -> tuple[tuple[Path, int], ...]:
    """The configured fonts that exist: (file, index in a .ttc collection). `file.ttc#n` picks
    font n of a collection."""
    found = []
    for entry in paths:
        path, _, index = entry.partition("#")
        if Path(path).is_file():
            found.append((Path(path), int(index or 0)))
    return tuple(found)


@cache
def characters(path: Path, index: int = 0) -> frozenset[int]:
    """The code points a font has a glyph for (its best Unicode cmap)."""
    font = TTFont(str(path), fontNumber=index, lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


def runs(text: str, coverage: Sequence[frozenset[int]]) -> Iterator[tuple[int, str]]:
    """(font number, text) runs of `text`: each character in the first font that has it (the
    first font when none has it). Spaces, digits and punctuation stay in the font of the run
    they are in when it has them, so "서울 03154" is one run, not three."""
    current, start = -1, 0
    for i, char in enumerate(text):
        code = ord(char)
        neutral = unicodedata.category(char)[0] in "NPSZ"
        if current >= 0 and neutral and code in coverage[current]:
            continue
        wanted = next((n for n, chars in enumerate(coverage) if code in chars), 0)
        if wanted != current:
            if i > start:
                yield current, text[start:i]
            current, start = wanted, i
    if text[start:]:
        yield max(current, 0), text[start:]
