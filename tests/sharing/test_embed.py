"""The embeddable sign form: framed only from the campaign's origins, signing as the page does."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic_core import PydanticCustomError
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.i18n import translate
from app.core.origins import web_origin
from app.email.models import OutboxMessage
from app.petitions.models import PetitionStatus
from app.signatures.models import Signature
from tests.conftest import Account, Mailbox, confirm_link
from tests.factories import make_petition
from tests.test_csp import EVENT_HANDLER, INLINE_SCRIPT, INLINE_STYLE, directives

SLUG = "no-forced-return"
CAMPAIGN = "protect-captured-north-korean-soldiers"
ALLOWED = "https://www.example.org"


def allow(session: Session, origins: list[str], slug: str = CAMPAIGN) -> None:
    campaign = session.exec(select(Campaign).where(Campaign.slug == slug)).one()
    campaign.embed_origins = origins
    session.add(campaign)
    session.commit()


def framing(response: Any) -> tuple[str, str | None]:
    """(frame-ancestors, X-Frame-Options) of a response."""
    policy = directives(response.headers["content-security-policy"])
    return policy["frame-ancestors"], response.headers.get("x-frame-options")


def test_the_embed_may_be_framed_only_by_the_campaigns_origins(
    client: TestClient, demo: Any, session: Session
) -> None:
    # No origin listed: nobody may frame it, as any other page.
    assert framing(client.get(f"/embed/petitions/{SLUG}")) == ("'none'", "DENY")
    allow(session, [ALLOWED, "http://127.0.0.1:8080"])
    page = client.get(f"/embed/petitions/{SLUG}?lang=ko")
    assert page.status_code == 200
    assert framing(page) == (f"{ALLOWED} http://127.0.0.1:8080", None)
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert not INLINE_SCRIPT.search(page.text)
    assert not INLINE_STYLE.search(page.text)
    assert not EVENT_HANDLER.search(page.text)
    # Compact: the title, the count and the sign form, in the asked language.
    assert f"<h1>{demo.translations['ko']['title']}</h1>" in page.text
    assert 'data-testid="signature-count">서명 0명<' in page.text
    assert f'method="post" action="/embed/petitions/{SLUG}/sign"' in page.text
    assert 'name="website"' in page.text  # the honeypot
    # Every other page still refuses to be framed.
    for path in (f"/petitions/{SLUG}", "/", f"/petitions/{SLUG}/thanks"):
        assert framing(client.get(path)) == ("'none'", "DENY"), path


def test_signing_in_the_embed_is_double_opt_in_like_the_page(
    client: TestClient, demo: Any, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    allow(session, [ALLOWED])
    response = client.post(
        f"/embed/petitions/{SLUG}/sign",
        data={"name": "Kim Min-ji", "email": "minji@example.org", "country": "KR", "locale": "ko"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/embed/petitions/{SLUG}/thanks?lang=ko"
    thanks = client.get(response.headers["location"])
    assert translate("ko", "thanks.title") in thanks.text
    assert framing(thanks) == (ALLOWED, None)
    assert 'data-network="kakaotalk"' in thanks.text
    stored = session.exec(select(Signature)).one()
    assert (stored.status, stored.locale, stored.country) == ("pending", "ko", "KR")
    outbox()
    [message] = smtp.wait_for(1)
    assert message["To"].addresses[0].addr_spec == "minji@example.org"
    assert "lang=ko" in confirm_link(message)


def test_embed_errors_stay_in_the_frame_next_to_their_fields(
    client: TestClient, demo: Any, session: Session
) -> None:
    allow(session, [ALLOWED])
    response = client.post(
        f"/embed/petitions/{SLUG}/sign",
        data={"name": "Olena", "email": "not-an-email", "country": "", "locale": "uk"},
    )
    assert response.status_code == 422
    assert framing(response) == (ALLOWED, None)
    assert f'<p class="error" id="e-email">{translate("uk", "errors.email_invalid")}</p>' in (
        response.text
    )
    assert 'value="Olena"' in response.text
    assert session.exec(select(Signature)).all() == []


def test_the_embed_has_the_pages_abuse_controls(client: TestClient, session: Session) -> None:
    petition = make_petition(session)
    session.commit()
    form = {"name": "Bot", "email": "bot@example.org", "country": "KR", "locale": "en"}
    human = client.post(f"/embed/petitions/{petition.slug}/sign", data=form, follow_redirects=False)
    bot = client.post(
        f"/embed/petitions/{petition.slug}/sign",
        data={**form, "email": "bot2@example.org", "website": "http://spam"},
        follow_redirects=False,
    )
    assert (human.status_code, bot.status_code) == (303, 303)
    assert human.headers["location"] == bot.headers["location"]
    statuses = [s.status for s in session.exec(select(Signature).order_by(col(Signature.id))).all()]
    assert statuses == ["pending", "suspect"]
    kinds = [m.kind for m in session.exec(select(OutboxMessage)).all()]
    assert kinds == ["signature_confirmation"]


def test_a_closed_petitions_embed_has_no_form_and_refuses_signatures(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session, status=PetitionStatus.closed)
    session.commit()
    page = client.get(f"/embed/petitions/{petition.slug}")
    assert page.status_code == 200
    assert translate("en", "petition.refusal.closed") in page.text
    assert "<form" not in page.text
    refused = client.post(
        f"/embed/petitions/{petition.slug}/sign",
        data={"name": "Ann", "email": "ann@example.org", "country": "GB"},
    )
    assert refused.status_code == 422
    assert session.exec(select(Signature)).all() == []
    assert client.get("/embed/petitions/no-such-petition").status_code == 404


# --- the campaign's origins, through the admin API --------------------------------------------


def test_organisers_set_the_embed_origins_through_the_admin_api(
    client: TestClient, demo: Any, session: Session, make_account: Any
) -> None:
    organiser: Account = make_account("organiser", campaigns=[CAMPAIGN])
    url = f"/api/v1/admin/campaigns/{CAMPAIGN}"
    assert client.get(url, headers=organiser.headers).json()["embed_origins"] == []
    changed = client.patch(
        url,
        json={"embed_origins": ["https://WWW.Example.org:443/", "http://127.0.0.1:8080"]},
        headers=organiser.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["embed_origins"] == ["https://www.example.org", "http://127.0.0.1:8080"]
    policy = directives(client.get(f"/embed/petitions/{SLUG}").headers["content-security-policy"])
    assert policy["frame-ancestors"] == "https://www.example.org http://127.0.0.1:8080"
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "campaign.update")).one()
    assert entry.details["embed_origins"]["to"] == [
        "https://www.example.org",
        "http://127.0.0.1:8080",
    ]
    assert (
        client.patch(url, json={"embed_origins": []}, headers=organiser.headers).json()[
            "embed_origins"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("origins", "error_type"),
    [
        (["https://example.org; script-src *"], "origin_invalid"),
        (["https://example.org/page"], "origin_invalid"),
        (["example.org"], "origin_invalid"),
        (["https://*.example.org"], "origin_invalid"),
        (["javascript:alert(1)"], "origin_invalid"),
        (["https://example.org", "https://EXAMPLE.org/"], "origin_duplicate"),
        ([f"https://site{n}.example.org" for n in range(21)], "too_long"),
    ],
)
def test_invalid_embed_origins_are_refused_with_the_field_named(
    client: TestClient, demo: Any, admin: Account, origins: list[str], error_type: str
) -> None:
    response = client.patch(
        f"/api/v1/admin/campaigns/{CAMPAIGN}",
        json={"embed_origins": origins},
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"].startswith("embed_origins")
    assert error["type"] == error_type
    unchanged = client.get(f"/api/v1/admin/campaigns/{CAMPAIGN}", headers=admin.headers).json()
    assert unchanged["embed_origins"] == []


def test_a_new_campaign_may_list_its_origins(client: TestClient, admin: Account) -> None:
    created = client.post(
        "/api/v1/admin/campaigns",
        json={
            "slug": "embedded",
            "translations": {"en": {"name": "Embedded"}},
            "embed_origins": ["https://[2001:DB8::1]:8443"],
        },
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["embed_origins"] == ["https://[2001:db8::1]:8443"]


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://Example.org", "https://example.org"),
        ("https://example.org:443/", "https://example.org"),
        ("http://example.org:80", "http://example.org"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://пример.рф", "https://xn--e1afmkfd.xn--p1ai"),
        ("https://203.0.113.7:8443", "https://203.0.113.7:8443"),
    ],
)
def test_origins_are_written_as_browsers_compare_them(given: str, origin: str) -> None:
    assert web_origin(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "",
        "https://",
        "ftp://example.org",
        "https://user@example.org",
        "https://example.org?x=1",
        "https://example.org#top",
        "https://example.org:0",
        "https://example.org:70000",
        "https://exa mple.org",
        "https://example.org,https://evil.example",
        "https://-bad-.example",
        "https://[::zz]",
        "'self'",
        "*",
    ],
)
def test_anything_but_an_origin_is_refused(given: str) -> None:
    with pytest.raises(PydanticCustomError):
        web_origin(given)
