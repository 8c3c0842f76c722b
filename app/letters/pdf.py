"""Printable letters for officials reached by post: an A4 PDF per letter."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from fpdf import FPDF
from sqlmodel import Session

from app.core.config import Settings
from app.core.errors import ProblemError
from app.core.fonts import installed
from app.core.i18n import country_name
from app.letters import engine
from app.letters.engine import Rendered
from app.letters.models import LetterDelivery
from app.letters.tasks import render_delivery
from app.targets.models import Target


class _Letter(FPDF):
    """Writes each run of text in the first configured font that has its characters.

    fpdf2's own fallback fonts (set_fallback_fonts) lose text: when a block starts with a
    character only a fallback font has (a Korean name first in the sender's address), the lines
    after it are written against the wrong font and vanish from the page's text
    (py-pdf/fpdf2#1772). So no fallback is left to fpdf2: every run is set in its font
    explicitly, as the maintainers suggest for mixed scripts.
    """

    def __init__(self, families: list[str]) -> None:
        super().__init__(format="A4")
        self.families = families

    def _covers(self, family: str, char: str) -> bool:
        return ord(char) in self.fonts[family].cmap  # type: ignore[union-attr]

    def runs(self, line: str) -> Iterator[tuple[str, str]]:
        """(family, text) runs of a line. Spaces, digits and punctuation stay in the font of the
        run they are in when it has them, so "서울 03154" is one run, not three."""
        family, start = "", 0
        for i, char in enumerate(line):
            neutral = unicodedata.category(char)[0] in "NPSZ"
            if family and neutral and self._covers(family, char):
                continue
            wanted = next((f for f in self.families if self._covers(f, char)), self.families[0])
            if wanted != family:
                if i > start:
                    yield family, line[start:i]
                family, start = wanted, i
        if line[start:]:
            yield family or self.families[0], line[start:]

    def block(self, lines: list[str], *, size: float, height: float, right: bool = False) -> None:
        """Lines of text, wrapped at the margins; `right` aligns short lines to the right."""
        for line in lines:
            runs = list(self.runs(line))
            if right:
                width = 0.0
                for family, text in runs:
                    self.set_font(family, size=size)
                    width += self.get_string_width(text)
                # (write() keeps a cell margin at either end of a line.)
                width += 2 * self.c_margin
                self.set_x(max(self.l_margin, self.w - self.r_margin - width))
            for family, text in runs:
                self.set_font(family, size=size)
                self.write(height, text)
            self.ln(height)


def letter_pdf(
    rendered: Rendered,
    *,
    target: Target,
    sender: list[str],
    fonts: list[str],
) -> bytes:
    """The letter on A4: sender, recipient's address, subject, text. Every script the fonts
    cover prints (the defaults cover Latin, Cyrillic and Hangul)."""
    available = installed(tuple(fonts))
    if not available:
        raise ProblemError(
            503,
            "pdf-font-missing",
            "No font is installed for printable letters",
            "Install the fonts named in PDF_FONTS (see README) or point PDF_FONTS at others.",
        )
    families = [f"font{i}" for i in range(len(available))]
    pdf = _Letter(families)
    pdf.set_margins(25, 20, 25)
    pdf.set_auto_page_break(True, margin=20)
    for family, (path, index) in zip(families, available, strict=True):
        pdf.add_font(family, fname=path, collection_font_number=index)
    pdf.set_title(rendered.subject)
    pdf.add_page()
    pdf.block([line for line in sender if line], size=10, height=5, right=True)
    pdf.ln(12)
    official = target.text(target.language)  # as the official's own office writes it
    recipient = [
        official["name"],
        official["role"],
        official["organisation"],
        target.postal_address or "",
    ]
    address = [part.strip() for line in recipient if line for part in line.splitlines()]
    pdf.block([line for line in address if line], size=11, height=5.5)
    pdf.ln(12)
    pdf.block(rendered.subject.splitlines(), size=12, height=6)
    pdf.ln(6)
    pdf.block(rendered.text.splitlines(), size=11, height=5.5)
    return bytes(pdf.output())


def printable(session: Session, *, delivery: LetterDelivery, settings: Settings) -> bytes:
    """A letter of the delivery log as its printable PDF (any letter prints; postal ones must):
    the supporter's address as the sender of their letter, the campaign's of a delivery. 409
    when the letter is not sent (cancelled) or its template fails."""
    try:
        rendered = render_delivery(session, delivery, settings)
    except engine.TemplateProblem as exc:
        raise ProblemError(
            409, "letter-unrenderable", "The letter's template fails", str(exc)
        ) from None
    if rendered is None:
        raise ProblemError(409, "letter-cancelled", "This letter is not sent")
    content, target, supporter, _petition_delivery, _petition = rendered
    if supporter is not None:
        sender = [
            supporter.name,
            supporter.city,
            country_name(supporter.country, target.language),
            supporter.email,
        ]
    else:
        sender = [settings.MAIL_FROM_NAME, settings.MAIL_FROM]
    return letter_pdf(content, target=target, sender=sender, fonts=settings.PDF_FONTS)
