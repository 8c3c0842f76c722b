"""What a donor types: amounts read in the page's language, names and addresses safe for mail
headers, and a donate page that says up front when donations are not available."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select

from app.donations.currencies import CURRENCIES, AmountError
from app.donations.models import Donation
from tests.fake_stripe import FakeStripe

CAMPAIGN = "protect-captured-north-korean-soldiers"


def submit(client: TestClient, **form: str) -> Any:
    data = {"frequency": "once", **form}
    return client.post(f"/campaigns/{CAMPAIGN}/donate", data=data, follow_redirects=False)


@pytest.mark.parametrize(
    ("locale", "currency", "typed", "minor"),
    [
        ("uk", "UAH", "25,50", 2550),  # the comma is the decimal mark in Ukrainian
        ("uk", "UAH", "1 000", 100000),  # an ordinary space groups thousands there
        ("en", "EUR", "25.50", 2550),
        ("en", "EUR", "1,000", 100000),
        ("ko", "KRW", "10,000", 10000),  # KRW has no minor unit
    ],
)
def test_a_typed_amount_is_read_in_the_pages_language(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    locale: str,
    currency: str,
    typed: str,
    minor: int,
) -> None:
    response = submit(client, currency=currency, custom_amount=typed, locale=locale)
    assert response.status_code == 303, response.text
    [checkout] = fake_stripe.sessions.values()
    assert checkout["amount_total"] == minor
    assert checkout["currency"] == currency.lower()


@pytest.mark.parametrize(
    ("locale", "currency", "typed", "example"),
    [
        ("uk", "UAH", "1,000", "25,50"),  # a thousand to an English eye, 1.000 in Ukrainian
        ("en", "EUR", "1.000,5", "25.50"),
        ("en", "EUR", "1,00", "25.50"),
        ("ko", "KRW", "10.000", "10000"),  # ten, or ten thousand won?
    ],
)
def test_an_ambiguous_amount_is_refused_next_to_the_field(
    client: TestClient,
    demo: Any,
    fake_stripe: FakeStripe,
    session: Session,
    locale: str,
    currency: str,
    typed: str,
    example: str,
) -> None:
    response = submit(client, currency=currency, custom_amount=typed, locale=locale)
    assert response.status_code == 422
    assert 'aria-describedby="e-amount"' in response.text
    message = response.text.split('id="e-amount">', 1)[1].split("</p>", 1)[0]
    assert typed in message and example in message
    assert fake_stripe.sessions == {}
    assert session.exec(select(Donation)).all() == []


def test_to_minor_refuses_what_is_not_a_positive_number() -> None:
    eur = CURRENCIES["EUR"]
    for typed in ("ten", "-5", "1e3", "NaN", "Infinity", "€25", ""):
        with pytest.raises(AmountError) as caught:
            eur.to_minor(typed, locale="en")
        assert caught.value.type == "amount_invalid"
    assert eur.to_minor(" 12.5 ", locale="en") == 1250
    assert CURRENCIES["UAH"].to_minor("1 000,50", locale="uk") == 100050


def test_a_name_with_a_line_break_is_refused_by_the_api_and_never_stored(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    for field, value in (
        ("name", "Kim\r\nBcc: everyone@example.org"),
        ("name", "Kim\x00"),
        ("name", "Kim\u2028Min-jun"),
        ("name", "K" * 101),
        ("email", "kim@example.org\r\nBcc: everyone@example.org"),
        ("email", "not-an-address"),
    ):
        response = client.post(
            f"/api/v1/campaigns/{CAMPAIGN}/donations",
            json={"amount": 2500, "currency": "EUR", field: value},
        )
        assert response.status_code == 422, (field, value)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert session.exec(select(Donation)).all() == []
    assert fake_stripe.sessions == {}


def test_a_name_with_a_line_break_is_refused_next_to_the_form_field(
    client: TestClient, demo: Any, fake_stripe: FakeStripe, session: Session
) -> None:
    response = submit(
        client,
        currency="EUR",
        custom_amount="25",
        locale="en",
        name="Kim\r\nBcc: everyone@example.org",
        email="kim@example.org",
    )
    assert response.status_code == 422
    assert 'aria-describedby="e-name"' in response.text
    assert "Remove the line break" in response.text
    bad_email = submit(client, currency="EUR", custom_amount="25", locale="uk", email="kim@")
    assert bad_email.status_code == 422 and 'id="e-email"' in bad_email.text
    assert session.exec(select(Donation)).all() == []
    assert fake_stripe.sessions == {}

    # A clean name and address go through, trimmed.
    ok = submit(
        client,
        currency="EUR",
        custom_amount="25",
        locale="en",
        name=" Kim ",
        email="kim@Example.org",
    )
    assert ok.status_code == 303
    donation = session.exec(select(Donation)).one()
    assert (donation.name, donation.email) == ("Kim", "kim@example.org")


def test_the_donate_page_says_up_front_when_donations_are_not_configured(
    settings: Any, engine: Any, demo: Any, session: Session
) -> None:
    from app.main import create_app

    unconfigured = create_app(settings.model_copy(update={"STRIPE_SECRET_KEY": SecretStr("")}))
    with TestClient(unconfigured) as client:
        page = client.get(f"/campaigns/{CAMPAIGN}/donate?lang=en")
        assert page.status_code == 503
        assert "Donations are not available" in page.text
        assert "<form" not in page.text.split("<main", 1)[-1]
        posted = submit(client, currency="EUR", custom_amount="25", locale="en")
        assert posted.status_code == 503
        assert "<form" not in posted.text.split("<main", 1)[-1]
        api = client.post(
            f"/api/v1/campaigns/{CAMPAIGN}/donations", json={"amount": 2500, "currency": "EUR"}
        )
        assert api.status_code == 503
    assert session.exec(select(Donation)).all() == []
