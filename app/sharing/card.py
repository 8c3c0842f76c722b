"""The share card: a PNG of a petition's title and count that link previews show (og:image).

Drawn with Pillow in the fonts of PDF_FONTS (app/core/fonts.py): each run of text in the first
font that has its characters, so a Korean or Ukrainian title is drawn in its own letters, never
as empty boxes. A card depends only on the petition's title, its language and the count shown
(links.count_shown), so every server draws the same card for the same key, and each keeps it
(app/core/cache.py) rather than drawing it again.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from app.core import cache as process_cache
from app.core import fonts
from app.core.errors import ProblemError
from app.core.i18n import translate
from app.sharing.links import CARD_HEIGHT, CARD_WIDTH, count_shown

# A card never changes for its key, so it may be kept long; the key changes with the title,
# the language and the count shown.
CARD_CACHE_SECONDS = 3600

INK = (29, 29, 27)
MUTED = (90, 90, 85)
ACCENT = (11, 92, 173)
TRACK = (230, 228, 220)
PAPER = (255, 255, 255)
MARGIN = 72
TITLE_TOP = 150
TITLE_BOTTOM = 440
TITLE_SIZES = (64, 58, 52, 46, 40, 36)
WORDS = re.compile(r"\S+\s*")


@cache
def _font(path: Path, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size=size, index=index)


@dataclass(frozen=True)
class Typeface:
    """The configured fonts, first choice first, and the characters each one has."""

    faces: tuple[tuple[Path, int], ...]

    @classmethod
    def of(cls, paths: list[str]) -> Typeface:
        faces = fonts.installed(tuple(paths))
        if not faces:
            raise ProblemError(
                503,
                "share-font-missing",
                "No font is installed for share images",
                "Install the fonts named in PDF_FONTS (see README) or point PDF_FONTS at others.",
            )
        return cls(faces)

    def runs(self, text: str, size: int) -> list[tuple[ImageFont.FreeTypeFont, str]]:
        coverage = [fonts.characters(path, index) for path, index in self.faces]
        return [(_font(*self.faces[n], size), part) for n, part in fonts.runs(text, coverage)]

    def width(self, text: str, size: int) -> float:
        return sum(font.getlength(part) for font, part in self.runs(text, size))

    def draw(
        self,
        canvas: ImageDraw.ImageDraw,
        xy: tuple[float, float],
        text: str,
        *,
        size: int,
        fill: tuple[int, int, int],
        bold: bool = False,
    ) -> None:
        """`text` on one line, its baseline at xy[1]: every font's run on the same baseline."""
        x, baseline = xy
        for font, part in self.runs(text, size):
            canvas.text(
                (x, baseline),
                part,
                font=font,
                fill=fill,
                anchor="ls",
                stroke_width=1 if bold else 0,
                stroke_fill=fill,
            )
            x += font.getlength(part)

    def wrap(self, text: str, size: int, width: float) -> list[str]:
        """`text` in lines no wider than `width`, broken between words (inside a word only when
        it is wider than a line by itself)."""
        lines: list[str] = []
        line = ""
        for word in WORDS.findall(" ".join(text.split())):
            if self.width(line + word.rstrip(), size) <= width:
                line += word
                continue
            if line:
                lines.append(line.rstrip())
                line = ""
            while self.width(word.rstrip(), size) > width:  # one word wider than a line
                low, high = 1, len(word) - 1  # the longest start of it that fits (>= 1)
                while low < high:
                    middle = (low + high + 1) // 2
                    if self.width(word[:middle], size) <= width:
                        low = middle
                    else:
                        high = middle - 1
                lines.append(word[:low])
                word = word[low:]
            line = word
        if line.strip():
            lines.append(line.rstrip())
        return lines


def title_layout(typeface: Typeface, title: str) -> tuple[int, list[str]]:
    """The largest title size whose lines fit the title's box, and those lines (the last one
    shortened with an ellipsis when even the smallest size does not fit)."""
    width = CARD_WIDTH - 2 * MARGIN
    for size in TITLE_SIZES:
        lines = typeface.wrap(title, size, width)
        if len(lines) * size * 1.25 <= TITLE_BOTTOM - TITLE_TOP:
            return size, lines
    size = TITLE_SIZES[-1]
    fitting = int((TITLE_BOTTOM - TITLE_TOP) // (size * 1.25))
    lines = typeface.wrap(title, size, width)[:fitting]
    last = lines[-1]
    while last and typeface.width(last + "…", size) > width:
        last = last[:-1]
    return size, [*lines[:-1], last.rstrip() + "…"]


def draw_card(*, title: str, count: int, goal: int, locale: str, font_paths: list[str]) -> bytes:
    """The card as PNG bytes, its title also in the PNG's Title text (iTXt)."""
    typeface = Typeface.of(font_paths)
    image = Image.new("RGB", (CARD_WIDTH, CARD_HEIGHT), PAPER)
    canvas = ImageDraw.Draw(image)
    canvas.rectangle((0, 0, 16, CARD_HEIGHT), fill=ACCENT)
    typeface.draw(canvas, (MARGIN, 96), "Chorus", size=34, fill=ACCENT, bold=True)

    size, lines = title_layout(typeface, title)
    baseline = TITLE_TOP + size
    for line in lines:
        typeface.draw(canvas, (MARGIN, baseline), line, size=size, fill=INK, bold=True)
        baseline += round(size * 1.25)

    shown, exact = count_shown(count)
    key = "petition.count" if exact else "share.card_more_than"
    typeface.draw(
        canvas, (MARGIN, 520), translate(locale, key, count=shown), size=44, fill=INK, bold=True
    )
    goal_text = translate(locale, "petition.goal", count=goal)
    goal_width = typeface.width(goal_text, 30)
    typeface.draw(canvas, (CARD_WIDTH - MARGIN - goal_width, 520), goal_text, size=30, fill=MUTED)
    bar = (MARGIN, 548, CARD_WIDTH - MARGIN, 572)
    canvas.rounded_rectangle(bar, radius=12, fill=TRACK)
    filled = round((bar[2] - bar[0]) * min(1.0, shown / goal)) if goal else 0
    if shown:  # (at least a round dot: any signature shows)
        right = bar[0] + max(filled, bar[3] - bar[1])
        canvas.rounded_rectangle((bar[0], bar[1], right, bar[3]), radius=12, fill=ACCENT)

    info = PngInfo()
    info.add_itxt("Title", title, lang=locale)
    info.add_text("Software", "Chorus")
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info, optimize=True)
    return out.getvalue()


def card_png(
    *, petition_id: int, title: str, count: int, goal: int, locale: str, font_paths: list[str]
) -> bytes:
    """The card, drawn once per petition, language, title, goal and count shown by this
    server process (drawing takes tens of milliseconds; a surge of crawlers asks for it)."""
    shown, _ = count_shown(count)
    digest = hashlib.sha256(f"{title}\0{goal}\0{font_paths}".encode()).hexdigest()[:16]
    return process_cache.cached(
        ("share-card", petition_id, locale, shown, digest),
        CARD_CACHE_SECONDS,
        # (Any count with the same shown count draws the same card.)
        lambda: draw_card(
            title=title, count=count, goal=goal, locale=locale, font_paths=font_paths
        ),
    )
