"""The petition page's public numbers as pictures: confirmed signatures over time, and by country.

Server-rendered SVG inside the page (no script, no other site, no style attribute: the page's
Content-Security-Policy allows none), drawn from the tallies (stats.service, never a scan of the
signatures). Each chart has a title and a description for assistive technology, and the same
numbers come as a table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from babel.dates import format_skeleton
from babel.numbers import format_percent
from markupsafe import Markup, escape
from sqlmodel import Session

from app.core.db import utcnow
from app.core.i18n import babel_locale, country_name, number, translate
from app.petitions.models import CountryCount, Petition
from app.stats import service as stats_service

# Sizes in the pictures' own units: narrow enough that the text stays readable on a phone,
# where a picture is drawn at about 340 px wide (the stylesheet caps it on wide screens).
TIME_WIDTH, TIME_HEIGHT = 480, 204
LEFT, RIGHT, TOP, BOTTOM = 56, 468, 12, 176  # the time chart's plot inside the picture
COUNTRY_WIDTH = 360
ROW = 38  # one row per country
BAR_MAX = 290
COUNTRY_ROWS = 10
INK = "#1d1d1b"
MUTED = "#5a5a55"
ACCENT = "#0b5cad"
GRID = "#e6e4dc"
# The longest span drawn hour by hour, and day by day; longer ones go week by week.
HOURLY_UP_TO = timedelta(hours=48)
DAILY_UP_TO = timedelta(days=120)
STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC
    label: str  # in the page's language
    new: int
    total: int  # confirmed up to the end of this period


@dataclass(frozen=True)
class TimeChart:
    step: str  # hour, day or week
    periods: list[Period]  # every period from the first confirmation to now
    title: str
    desc: str
    svg: Markup

    @property
    def rows(self) -> list[Period]:
        """The table: the periods with new signatures."""
        return [p for p in self.periods if p.new]


@dataclass(frozen=True)
class CountryRow:
    name: str
    count: int
    share: str  # "52 %", as the page's language writes it


@dataclass(frozen=True)
class CountryChart:
    rows: list[CountryRow]
    title: str
    desc: str
    svg: Markup


def _period_start(moment: datetime, step: str) -> datetime:
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if step == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if step == "day" else day - timedelta(days=day.weekday())


def _label(moment: datetime, step: str, locale: str) -> str:
    cldr = babel_locale(locale)
    day = format_skeleton("MMMd", moment, locale=cldr)
    return f"{day} {format_skeleton('Hm', moment, locale=cldr)}" if step == "hour" else day


def _nice_step(total: int) -> int:
    """A round tick step (1, 2 or 5 times a power of ten) with four steps reaching `total`."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude * 4 >= total:
                return factor * magnitude
        magnitude *= 10


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", fill: str = MUTED, size: int = 12
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" '
        f'font-size="{size}">{escape(text)}</text>'
    )


def _open_svg(name: str, width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{name}-title {name}-desc">'
        f'<title id="{name}-title">{escape(title)}</title>'
        f'<desc id="{name}-desc">{escape(desc)}</desc>'
    )


def _time_svg(periods: list[Period], title: str, desc: str, locale: str) -> Markup:
    total = periods[-1].total
    tick = _nice_step(max(total, 1))
    top_value = tick * 4
    parts = [_open_svg("chart-time", TIME_WIDTH, TIME_HEIGHT, title, desc)]
    for i in range(5):  # horizontal grid lines, labelled with their counts
        line_y = BOTTOM - (BOTTOM - TOP) * i / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{line_y:.1f}" x2="{RIGHT}" y2="{line_y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(_text(LEFT - 8, line_y + 4, number(tick * i, locale), anchor="end"))

    def x(i: int) -> float:
        return RIGHT if len(periods) == 1 else LEFT + (RIGHT - LEFT) * i / (len(periods) - 1)

    def y(value: int) -> float:
        return BOTTOM - (BOTTOM - TOP) * value / top_value

    points = " ".join(f"{x(i):.1f},{y(p.total):.1f}" for i, p in enumerate(periods))
    parts.append(
        f'<polygon points="{LEFT if len(periods) > 1 else RIGHT},{BOTTOM} {points} '
        f'{RIGHT},{BOTTOM}" fill="{ACCENT}" fill-opacity="0.15"/>'
    )
    parts.append(
        f'<polyline points="{points}" fill="none" stroke="{ACCENT}" stroke-width="2.5" '
        'stroke-linejoin="round"/>'
    )
    parts.append(
        f'<circle cx="{x(len(periods) - 1):.1f}" cy="{y(total):.1f}" r="4" fill="{ACCENT}"/>'
    )
    parts.append(_text(LEFT, BOTTOM + 22, periods[0].label))
    if len(periods) > 1:
        parts.append(_text(RIGHT, BOTTOM + 22, periods[-1].label, anchor="end"))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)


def over_time(
    session: Session, *, petition: Petition, locale: str, now: datetime | None = None
) -> TimeChart | None:
    """Confirmed signatures over time, hour by hour for a young petition, else day by day, and
    week by week after four months; None before the first confirmation."""
    assert petition.id is not None
    hours = stats_service.confirmed_by_hour(session, petition_id=petition.id)
    if not hours:
        return None
    end = now or utcnow()
    if petition.closed_at is not None:
        end = min(end, petition.closed_at)
    end = max(end, hours[-1].hour)
    first = hours[0].hour
    span = end - first
    step = "hour" if span <= HOURLY_UP_TO else "day" if span <= DAILY_UP_TO else "week"
    new: dict[datetime, int] = {}
    for hour in hours:
        start = _period_start(hour.hour, step)
        new[start] = new.get(start, 0) + hour.count
    periods: list[Period] = []
    total = 0
    moment, last = _period_start(first, step), _period_start(end, step)
    while moment <= last:
        total += new.get(moment, 0)
        periods.append(Period(moment, _label(moment, step, locale), new.get(moment, 0), total))
        moment += STEPS[step]
    title = translate(locale, "chart.time.heading")
    desc = translate(
        locale,
        "chart.time.desc",
        start=periods[0].label,
        end=periods[-1].label,
        count=total,
    )
    return TimeChart(step, periods, title, desc, _time_svg(periods, title, desc, locale))


def _country_svg(rows: list[CountryRow], title: str, desc: str, locale: str) -> Markup:
    height = ROW * len(rows) + 4
    most = max(row.count for row in rows)
    parts = [_open_svg("chart-countries", COUNTRY_WIDTH, height, title, desc)]
    for i, row in enumerate(rows):
        top = ROW * i
        width = max(2.0, BAR_MAX * row.count / most)
        parts.append(_text(0, top + 14, row.name, fill=INK, size=13))
        parts.append(
            f'<rect x="0" y="{top + 19}" width="{width:.1f}" height="13" rx="2" fill="{ACCENT}"/>'
        )
        parts.append(_text(width + 6, top + 30, number(row.count, locale), size=13))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)


def by_country(counts: list[CountryCount], *, locale: str) -> CountryChart | None:
    """Confirmed signatures by country (largest first, the smallest together as "other
    countries" beyond ten rows), from the country tallies; None before the first confirmation."""
    if not counts:
        return None
    total = sum(c.count for c in counts)
    shown = counts if len(counts) <= COUNTRY_ROWS else counts[: COUNTRY_ROWS - 1]
    pairs = [(country_name(c.country, locale), c.count) for c in shown]
    if len(shown) < len(counts):
        rest = sum(c.count for c in counts[len(shown) :])
        pairs.append((translate(locale, "chart.country.other"), rest))
    cldr = babel_locale(locale)
    rows = [CountryRow(name, n, format_percent(n / total, locale=cldr)) for name, n in pairs]
    title = translate(locale, "petition.by_country")
    desc = translate(locale, "chart.country.desc", count=len(counts), first=rows[0].name)
    return CountryChart(rows, title, desc, _country_svg(rows, title, desc, locale))
