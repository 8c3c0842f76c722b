"""Officials in the petition's languages: organisers translate name, role and organisation;
pages and letters show them in their own language, the default where no translation exists."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.petitions.models import Petition
from app.targets.models import DeliveryChannel, Target
from tests.conftest import Account, Mailbox, body_text
from tests.factories import make_petition

ADMIN = "/api/v1/admin"
KOREAN = {"name": "우크라이나 대통령", "role": "대통령", "organisation": "우크라이나 대통령실"}
UKRAINIAN = {
    "name": "Президент України",
    "role": "Президент",
    "organisation": "Офіс Президента України",
}


def official(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": "ua-president",
        "name": "President of Ukraine",
        "role": "President",
        "organisation": "Office of the President of Ukraine",
        "country": "UA",
        "language": "uk",
        "email": "president@ukraine.example",
        "translations": {"ko": KOREAN, "uk": UKRAINIAN},
    }
    body.update(overrides)
    return body


def fields(response: Any) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"] for e in response.json()["errors"]}


@pytest.fixture
def campaign(client: TestClient, admin: Account) -> str:
    response = client.post(
        f"{ADMIN}/campaigns",
        json={
            "slug": "free-them",
            "default_locale": "en",
            "translations": {"en": {"name": "Free them"}, "ko": {"name": "풀어 주십시오"}},
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return "free-them"


def target_of(session: Session, key: str) -> Target:
    return session.exec(select(Target).where(Target.key == key)).one()


# --- the admin API ----------------------------------------------------------------------------


def test_organisers_set_replace_and_remove_translations(
    client: TestClient, admin: Account, campaign: str
) -> None:
    created = client.post(
        f"{ADMIN}/campaigns/{campaign}/targets",
        json=official(translations={"ko": KOREAN, "uk": {"name": "Президент України"}}),
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    target = created.json()
    # The default fields are as sent; a role or organisation not given is stored empty.
    assert (target["name"], target["role"]) == ("President of Ukraine", "President")
    assert target["translations"] == {
        "ko": KOREAN,
        "uk": {"name": "Президент України", "role": "", "organisation": ""},
    }
    listed = client.get(f"{ADMIN}/campaigns/{campaign}/targets", headers=admin.headers).json()
    assert listed["data"][0]["translations"] == target["translations"]

    # A PATCH replaces the languages sent, removes those sent as null, keeps the others.
    patched = client.patch(
        f"{ADMIN}/targets/{target['id']}",
        json={"translations": {"uk": UKRAINIAN, "ko": None}},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["translations"] == {"uk": UKRAINIAN}
    assert patched.json()["name"] == "President of Ukraine"  # the default is untouched
    again = client.patch(
        f"{ADMIN}/targets/{target['id']}",
        json={"translations": {"ko": KOREAN}, "role": "Head of State"},
        headers=admin.headers,
    )
    assert again.json()["translations"] == {"ko": KOREAN, "uk": UKRAINIAN}
    assert again.json()["role"] == "Head of State"

    entries = client.get(f"{ADMIN}/audit", headers=admin.headers).json()
    updates = [e["details"] for e in entries if e["action"] == "target.update"]
    assert {"changed": ["uk"], "removed": ["ko"]} in [d.get("translations") for d in updates]
    created_entry = next(e for e in entries if e["action"] == "target.create")
    assert created_entry["details"]["locales"] == ["ko", "uk"]


def test_the_openapi_document_describes_translations(client: TestClient) -> None:
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for shape in ("TargetCreate", "TargetUpdate", "TargetAdmin"):
        assert "translations" in schemas[shape]["properties"], shape
    assert set(schemas["TargetText"]["properties"]) == {"name", "role", "organisation"}
    assert schemas["TargetText"]["required"] == ["name"]
    described = schemas["TargetCreate"]["properties"]["translations"]
    assert "default" in described["description"]
    assert described["examples"][0]["ko"]["name"] == "우크라이나 대통령"
    assert schemas["TargetAdmin"]["properties"]["translations"]["additionalProperties"] == {
        "additionalProperties": {"type": "string"},
        "type": "object",
    }


def test_translation_input_is_checked(client: TestClient, admin: Account, campaign: str) -> None:
    def post(translations: Any) -> Any:
        return client.post(
            f"{ADMIN}/campaigns/{campaign}/targets",
            json=official(translations=translations),
            headers=admin.headers,
        )

    assert fields(post({"fr": KOREAN})) == {"translations.fr.[key]"}
    assert fields(post({"klingon": KOREAN})) == {"translations.klingon.[key]"}
    assert fields(post({"ko": {**KOREAN, "name": "대" * 201}})) == {"translations.ko.name"}
    assert fields(post({"ko": {**KOREAN, "organisation": "외" * 201}})) == {
        "translations.ko.organisation"
    }
    assert fields(post({"ko": {"role": "대통령"}})) == {"translations.ko.name"}
    assert fields(post({"ko": {**KOREAN, "name": "   "}})) == {"translations.ko.name"}
    assert fields(post({"ko": {**KOREAN, "title": "x"}})) == {"translations.ko.title"}
    assert fields(post({"ko": "우크라이나 대통령"})) == {"translations.ko"}
    assert fields(post(["ko"])) == {"translations"}
    control = post({"uk": {**UKRAINIAN, "role": "Прези\u0007дент"}})
    assert fields(control) == {"translations.uk.role"}
    assert control.json()["errors"][0]["type"] == "text_control_character"
    assert fields(post({"uk": {**UKRAINIAN, "name": "Президент\nУкраїни"}})) == {
        "translations.uk.name"
    }
    listed = client.get(f"{ADMIN}/campaigns/{campaign}/targets", headers=admin.headers).json()
    assert listed["count"] == 0  # nothing half-created

    created = post({"ko": KOREAN})
    assert created.status_code == 201
    target_id = created.json()["id"]

    def patch(body: Any) -> Any:
        return client.patch(f"{ADMIN}/targets/{target_id}", json=body, headers=admin.headers)

    assert fields(patch({"translations": None})) == {"translations"}
    assert fields(patch({"translations": {"de": KOREAN}})) == {"translations.de.[key]"}
    assert fields(patch({"translations": {"uk": {"name": ""}}})) == {"translations.uk.name"}
    # A refused change changes nothing.
    listed = client.get(f"{ADMIN}/campaigns/{campaign}/targets", headers=admin.headers).json()
    assert listed["data"][0]["translations"] == {"ko": KOREAN}


# --- pages and the public API -----------------------------------------------------------------


def test_the_korean_and_ukrainian_pages_show_the_officials_in_their_language(
    client: TestClient, demo: Petition
) -> None:
    korean = client.get(f"/petitions/{demo.slug}?lang=ko").text
    assert "<strong>우크라이나 대통령</strong>, 우크라이나 대통령실" in korean
    assert "<strong>대한민국 통일부 장관</strong>, 통일부" in korean
    assert "> 우크라이나 대통령</label>" in korean  # the letter form
    assert "President of Ukraine" not in korean and "Ministry of Unification" not in korean

    ukrainian = client.get(f"/petitions/{demo.slug}?lang=uk").text
    assert "<strong>Президент України</strong>, Офіс Президента України" in ukrainian
    assert "> Міністр закордонних справ Республіки Корея</label>" in ukrainian
    assert "President of Ukraine" not in ukrainian

    english = client.get(f"/petitions/{demo.slug}").text
    assert "<strong>President of Ukraine</strong>, Office of the President of Ukraine" in english
    # The role is not repeated after a name that already says it.
    assert "> President of Ukraine</label>" in english

    public = client.get(f"/api/v1/petitions/{demo.slug}?lang=ko").json()
    assert public["targets"][0] == {**KOREAN, "country": "UA"}
    letter = client.get(f"/api/v1/petitions/{demo.slug}/letter?lang=uk").json()
    assert letter["targets"][0] == {"key": "ua-president", **UKRAINIAN}


def test_a_role_that_the_name_does_not_say_is_shown_in_the_pages_language(
    client: TestClient, demo: Petition, session: Session
) -> None:
    target = target_of(session, "kr-unification")
    target.translations = {
        **target.translations,
        "ko": {"name": "김하늘", "role": "통일부 장관", "organisation": "통일부"},
    }
    session.add(target)
    session.commit()
    korean = client.get(f"/petitions/{demo.slug}?lang=ko").text
    assert "> 김하늘, 통일부 장관</label>" in korean


def test_a_missing_translation_falls_back_to_the_default(
    client: TestClient, session: Session
) -> None:
    petition = make_petition(session, locales=("en", "ko", "uk"))
    assert petition.id is not None
    [target] = session.exec(select(Target).where(Target.campaign_id == petition.campaign_id))
    # Ukrainian names the official only; Korean has no translation at all.
    target.translations = {"uk": {"name": "Міністр тестів", "role": "", "organisation": ""}}
    session.add(target)
    session.commit()

    korean = client.get(f"/petitions/{petition.slug}?lang=ko").text
    assert "<strong>Minister of Tests</strong>, Ministry of Tests" in korean
    ukrainian = client.get(f"/petitions/{petition.slug}?lang=uk").text
    assert "<strong>Міністр тестів</strong>, Ministry of Tests" in ukrainian
    public = client.get(f"/api/v1/petitions/{petition.slug}?lang=uk").json()
    assert public["targets"] == [
        {
            "name": "Міністр тестів",
            "role": "Minister",
            "organisation": "Ministry of Tests",
            "country": "GB",
        }
    ]


def test_text_picks_the_language_then_its_base_language_then_the_default() -> None:
    target = Target(
        campaign_id=1,
        key="t",
        name="Minister of Tests",
        role="Minister",
        organisation="Ministry of Tests",
        country="GB",
        language="en",
        translations={"uk": {"name": "Міністр тестів", "role": "Міністр", "organisation": ""}},
    )
    assert (
        target.text("uk-UA")
        == target.text("uk")
        == {
            "name": "Міністр тестів",
            "role": "Міністр",
            "organisation": "Ministry of Tests",
        }
    )
    default = {"name": "Minister of Tests", "role": "Minister", "organisation": "Ministry of Tests"}
    assert target.text("ko") == target.text(None) == target.text("en") == default


# --- letters ----------------------------------------------------------------------------------


def test_a_delivery_letter_addresses_each_official_in_its_language(
    client: TestClient, demo: Petition, smtp: Mailbox, outbox: Any, admin: Account
) -> None:
    response = client.post(
        f"{ADMIN}/petitions/{demo.slug}/deliveries", json={}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    outbox()
    smtp.wait_for(5)
    [to_president] = smtp.to("president@ukraine.example")
    assert to_president["Subject"].startswith("Петиція:")
    assert body_text(to_president).startswith("Шановний(а) Президент України,")
    assert str(to_president["To"]) == "Президент України <president@ukraine.example>"
    [to_unification] = smtp.to("unification@korea.example")
    assert body_text(to_unification).startswith("대한민국 통일부 장관 귀하,")
    [to_eu] = smtp.to("hr-vp@eu.example")
    text = body_text(to_eu)
    assert text.startswith("Dear High Representative of the Union for Foreign Affairs")
    assert "we deliver it to you as High Representative." in text


def test_a_supporters_letter_addresses_the_official_in_the_letters_language(
    client: TestClient, demo: Petition, session: Session, smtp: Mailbox, outbox: Any
) -> None:
    # The Korean Ministry of Foreign Affairs has no Ukrainian translation here: the default.
    target = target_of(session, "kr-mofa")
    target.translations = {k: v for k, v in target.translations.items() if k != "uk"}
    session.add(target)
    session.commit()
    accepted = client.post(
        f"/api/v1/petitions/{demo.slug}/letters",
        json={
            "name": "Олена Коваленко",
            "email": "olena@example.org",
            "country": "UA",
            "targets": ["ua-president", "kr-mofa"],
            "message": "Прошу вас не передавати цих двох людей туди, де їм загрожує покарання, "
            "і домовитися про їхню безпечну передачу.",
            "locale": "uk",
        },
    )
    assert accepted.status_code == 202, accepted.text
    outbox()
    [confirmation] = smtp.wait_for(1)
    link = next(
        line.strip().removeprefix("http://testserver")
        for line in body_text(confirmation).splitlines()
        if "/letters/confirm/" in line
    )
    assert client.post(link).status_code == 200
    outbox()
    smtp.wait_for(3)
    [to_president] = smtp.to("president@ukraine.example")
    assert body_text(to_president).startswith("Шановний(а) Президент України,")
    [to_minister] = smtp.to("mofa@korea.example")
    assert body_text(to_minister).startswith(
        "Шановний(а) Minister of Foreign Affairs of the Republic of Korea,"
    )


def test_a_printed_letter_names_the_official_as_its_office_does(
    client: TestClient,
    demo: Petition,
    session: Session,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
) -> None:
    pypdf = pytest.importorskip("pypdf")
    target = target_of(session, "ua-president")
    target.delivery_channel = DeliveryChannel.postal
    session.add(target)
    session.commit()
    response = client.post(
        f"{ADMIN}/petitions/{demo.slug}/deliveries", json={}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    [entry] = [e for e in response.json()["letters"] if e["target"] == "ua-president"]
    printed = client.get(f"{ADMIN}/letters/{entry['id']}/letter.pdf", headers=admin.headers)
    assert printed.status_code == 200, printed.text
    text = "".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(printed.content)).pages
    )
    assert "Президент України" in text and "Офіс Президента України" in text
    assert "President of Ukraine" not in text
