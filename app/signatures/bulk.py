"""Confirmed signatures made up in bulk, for benchmarks and load tests (PostgreSQL).

The benchmark's export and console phases need a petition with a million confirmed
signatures. Recording them one by one (lifecycle.py) would take hours; this module, which owns
`signature` and its tallies with the rest of app/signatures/, writes them in one statement and
then rebuilds the tallies (tally.recount). Not for a live database: it replaces a petition's
signatures and rebuilds every tally.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from app.core.config import Settings
from app.signatures import tally

# Rows made up by PostgreSQL itself (generate_series), a row per number g: a Korean name and an
# example.org address, one of the countries in turn, every other signer consenting to updates,
# confirmed at a time spread hour by hour over `hours` (as a campaign's signatures are).
_INSERT = (
    "INSERT INTO signature (petition_id, name, email, email_normalised, country,"
    " consent_updates, locale, status, created_at, confirmed_at, confirmation_sends)"
    " SELECT :petition_id, '김민준 Signer ' || g, 'signer' || g || '@example.org',"
    " 'signer' || g || '@example.org', (CAST(:countries AS text[]))[1 + g % :n_countries],"
    " g % 2 = 0, :locale, 'confirmed', t, t, 1"
    " FROM generate_series(1, :count) AS g,"
    " LATERAL (SELECT now() - g % :hours * interval '1 hour') AS at(t)"
)


def load_confirmed(
    session: Session,
    *,
    petition_id: int,
    count: int,
    settings: Settings,
    countries: tuple[str, ...] = ("KR", "UA", "GB", "DE", "PL"),
    locale: str = "ko",
    hours: int = 720,
) -> None:
    """Replace the petition's signatures with `count` made-up confirmed ones (spread over the
    last `hours` hours and over `countries`), and rebuild the tallies to count them. The
    caller commits."""
    assert session.get_bind().dialect.name == "postgresql", "bulk loads run on PostgreSQL"
    assert count >= 0 and countries and hours > 0
    session.execute(
        text("DELETE FROM signature WHERE petition_id = :petition_id"),
        {"petition_id": petition_id},
    )
    session.execute(
        text(_INSERT),
        {
            "petition_id": petition_id,
            "count": count,
            "countries": list(countries),
            "n_countries": len(countries),
            "locale": locale,
            "hours": hours,
        },
    )
    tally.recount(session, settings=settings)
