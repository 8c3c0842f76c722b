"""Printable letters for officials reached by post: an A4 PDF per letter."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fpdf import FPDF

from app.core.errors import ProblemError
from app.letters.engine import Rendered
from app.targets.models import Target


@cache
def _fonts(paths: tuple[str, ...]) -> tuple[tuple[Path, int], ...]:
    """The configured fonts that exist: (file, index in a .ttc collection)."""
    found = []
    for entry in paths:
        path, _, index = entry.partition("#")
        if Path(path).is_file():
            found.append((Path(path), int(index or 0)))
    return tuple(found)


def letter_pdf(
    rendered: Rendered,
    *,
    target: Target,
    sender: list[str],
    fonts: list[str],
) -> bytes:
    """The letter on A4: sender, recipient's address, subject, text. Every script the fonts
    cover prints (the defaults cover Latin, Cyrillic and Hangul)."""
    available = _fonts(tuple(fonts))
    if not available:
        raise ProblemError(
            503,
            "pdf-font-missing",
            "No font is installed for printable letters",
            "Install the fonts named in PDF_FONTS (see README) or point PDF_FONTS at others.",
        )
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 20, 25)
    pdf.set_auto_page_break(True, margin=20)
    names = []
    for i, (path, index) in enumerate(available):
        name = f"font{i}"
        pdf.add_font(name, fname=path, collection_font_number=index)
        names.append(name)
    pdf.set_fallback_fonts(names[1:], exact_match=False)
    pdf.set_title(rendered.subject)
    pdf.add_page()
    pdf.set_font(names[0], size=10)
    pdf.multi_cell(0, 5, "\n".join(line for line in sender if line), align="R")
    pdf.ln(12)
    official = target.text(target.language)  # as the official's own office writes it
    recipient = [official["name"], official["role"], official["organisation"]]
    recipient.append(target.postal_address or "")
    pdf.set_font(names[0], size=11)
    pdf.multi_cell(0, 5.5, "\n".join(line.strip() for line in recipient if line and line.strip()))
    pdf.ln(12)
    pdf.set_font(names[0], size=12)
    pdf.multi_cell(0, 6, rendered.subject)
    pdf.ln(6)
    pdf.set_font(names[0], size=11)
    pdf.multi_cell(0, 5.5, rendered.text)
    return bytes(pdf.output())
