"""Text that may end up in an e-mail header: one line, no control characters, bounded.

A name or address with CR/LF (or NUL, or a Unicode line separator) reaching `To:` cannot be
built into a message, and the mail worker stalls on it; such input is refused where it enters,
with a field error, instead of being stored.
"""

from __future__ import annotations

import unicodedata

from pydantic_core import PydanticCustomError

# Control characters (CR, LF, NUL...), surrogates, and the Unicode line and paragraph
# separators, which Python's str.splitlines() (and so header folding) also breaks lines on.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def header_safe(value: str) -> str:
    """Refuse (PydanticCustomError `text_control_character`) text with a line break or another
    control character; use as `AfterValidator(header_safe)`."""
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise PydanticCustomError(
                "text_control_character",
                "Remove the line break or control character {char}",
                {"char": f"U+{ord(char):04X}"},
            )
    return value
