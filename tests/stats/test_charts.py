"""The petition page's charts: signatures over time and by country, SVG from the tallies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.petitions.models import CountryCount
from app.stats import charts
from tests.factories import make_petition
from tests.sharing.helpers import confirmed_at

SVG = {"svg": "http://www.w3.org/2000/svg"}
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday


def svg_of(html: str, figure: str) -> ElementTree.Element:
    match = re.search(
        rf'<figure class="chart-figure" id="{figure}">.*?(<svg .*?</svg>)', html, re.S
    )
    assert match, f"no {figure} chart"
    return ElementTree.fromstring(match.group(1))  # noqa: S314 (ours)


def table_rows(html: str, figure: str) -> list[list[str]]:
    section = html.split(f'id="{figure}"', 1)[1].split("</figure>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_no_chart_before_the_first_confirmation(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    session.commit()
    html = client.get(f"/petitions/{petition.slug}").text
    assert "<svg" not in html and 'class="numbers"' not in html


def test_a_young_petition_is_charted_hour_by_hour_with_a_title_a_description_and_a_table(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session, locales=("uk", "en"))
    start = utcnow().replace(minute=30, second=0, microsecond=0) - timedelta(hours=3)
    for minutes in (0, 10, 130):  # hh:30, hh:40, and two hours later
        confirmed_at(session, settings, petition, start + timedelta(minutes=minutes))
    chart = charts.over_time(session, petition=petition, locale="uk")
    assert chart is not None and chart.step == "hour"
    hour = start.replace(minute=0)
    assert [(p.start, p.new, p.total) for p in chart.periods] == [
        (hour, 2, 2),
        (hour + timedelta(hours=1), 0, 2),
        (hour + timedelta(hours=2), 1, 3),
        (hour + timedelta(hours=3), 0, 3),
    ]
    labels = [p.label for p in chart.periods]
    assert chart.desc == f"З {labels[0]} по {labels[-1]} підтверджено 3 підписи."
    assert re.fullmatch(r"\d+ [а-яії]+\. \d\d:00", labels[0])  # "2 бер. 09:00"

    html = client.get(f"/petitions/{petition.slug}?lang=uk").text
    svg = svg_of(html, "chart-time")
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "chart-time-title chart-time-desc"
    title, desc = svg.find("svg:title", SVG), svg.find("svg:desc", SVG)
    assert title is not None and title.text == "Підписи з часом"
    assert desc is not None and desc.text and "підтверджено 3 підписи" in desc.text
    assert svg.find(".//svg:polyline", SVG) is not None
    assert "style=" not in html.split('id="chart-time"', 1)[1].split("</svg>", 1)[0]
    # The table says the same as the line, hours with new signatures only.
    assert table_rows(html, "chart-time") == [[labels[0], "2", "2"], [labels[2], "1", "3"]]
    assert '<th scope="col">Година (UTC)</th>' in html


def test_older_petitions_are_charted_by_day_then_by_week(
    session: Session, settings: Settings
) -> None:
    petition = make_petition(session)
    for days in (0, 0, 3, 9):
        confirmed_at(session, settings, petition, T0 + timedelta(days=days))
    daily = charts.over_time(session, petition=petition, locale="en", now=T0 + timedelta(days=10))
    assert daily is not None and daily.step == "day"
    assert len(daily.periods) == 11
    assert [(p.label, p.new, p.total) for p in daily.rows] == [
        ("2 Mar", 2, 2),
        ("5 Mar", 1, 3),
        ("11 Mar", 1, 4),
    ]
    confirmed_at(session, settings, petition, T0 + timedelta(days=200))
    weekly = charts.over_time(session, petition=petition, locale="en", now=T0 + timedelta(days=201))
    assert weekly is not None and weekly.step == "week"
    assert weekly.periods[0].start == datetime(2026, 3, 2, tzinfo=UTC)  # its Monday
    assert [p.new for p in weekly.rows] == [3, 1, 1]
    assert weekly.periods[-1].total == 5


def test_the_country_chart_shows_ten_rows_with_the_rest_as_other_countries() -> None:
    codes = ["UA", "KR", "DE", "PL", "GB", "FR", "US", "JP", "CA", "NL", "SE", "NO"]
    counts = [CountryCount(country=c, count=100 - i) for i, c in enumerate(codes)]
    chart = charts.by_country(counts, locale="ko")
    assert chart is not None
    assert [row.name for row in chart.rows][:2] == ["우크라이나", "대한민국"]
    assert chart.rows[-1].name == "기타 국가"
    assert len(chart.rows) == 10
    assert chart.rows[-1].count == sum(c.count for c in counts[9:])
    assert sum(row.count for row in chart.rows) == sum(c.count for c in counts)
    svg = ElementTree.fromstring(str(chart.svg))  # noqa: S314 (ours)
    assert len(svg.findall("svg:rect", SVG)) == 10
    assert chart.desc == "서명자가 있는 국가는 12개이며, 우크라이나에서 가장 많이 서명했습니다."
    assert charts.by_country([], locale="en") is None


def test_the_country_table_is_in_the_pages_language(
    client: TestClient, session: Session, settings: Settings
) -> None:
    petition = make_petition(session, locales=("uk",))
    for country in ("UA", "UA", "UA", "PL"):
        confirmed_at(session, settings, petition, utcnow(), country=country)
    html = client.get(f"/petitions/{petition.slug}").text
    assert table_rows(html, "chart-countries") == [
        ["Україна", "3", "75%"],
        ["Польща", "1", "25%"],
    ]
    assert svg_of(html, "chart-countries").get("aria-labelledby") == (
        "chart-countries-title chart-countries-desc"
    )


def test_the_charts_read_the_tallies_never_the_signatures(
    session: Session, settings: Settings, engine: Engine, statements: list[str]
) -> None:
    petition = make_petition(session)
    confirmed_at(session, settings, petition, T0)
    statements.clear()
    with Session(engine) as reader:
        assert charts.over_time(reader, petition=petition, locale="en") is not None
    assert statements
    assert not [s for s in statements if re.search(r"\bsignature\b", s)]
