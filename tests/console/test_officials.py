"""Officials and their groups in the console, and the officials a petition is addressed to:
each form goes through the targets and petitions services (the admin API's), errors come back
next to their fields, and every change is audited with the person who made it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.petitions import service as petition_service
from app.petitions.models import Petition, PetitionStatus
from app.targets.models import DeliveryChannel, Target, TargetGroup
from tests.conftest import Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, status=PetitionStatus.open, locales=("en", "ko"))


@pytest.fixture
def campaign(session: Session, petition: Petition) -> Campaign:
    return session.exec(select(Campaign).where(Campaign.id == petition.campaign_id)).one()


@pytest.fixture
def organiser(make_account: Any, campaign: Campaign) -> Account:
    account: Account = make_account("organiser", [campaign.slug])
    return account


def target(session: Session, key: str) -> Target:
    return session.exec(select(Target).where(Target.key == key)).one()


def audit(session: Session, action: str) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        )
    )


OFFICIAL = {
    "key": "ua-president",
    "name": "President of Ukraine",
    "role": "President",
    "organisation": "Office of the President",
    "country": "UA",
    "language": "uk",
    "group": "",
    "delivery_channel": "email",
    "email": "president@example.org",
    "postal_address": "",
    "translations.ko.name": "우크라이나 대통령",
    "translations.ko.role": "대통령",
    "translations.ko.organisation": "",
}


def test_an_organiser_adds_an_official_with_translations(
    client: TestClient, session: Session, campaign: Campaign, organiser: Account
) -> None:
    signed_in(client, organiser.email, organiser.password)
    listing = client.get(f"/admin/campaigns/{campaign.slug}/officials")
    assert listing.status_code == 200
    assert "Minister of Tests" in listing.text  # the factory's official
    form = client.get(f"/admin/campaigns/{campaign.slug}/officials/new")
    assert form.status_code == 200
    assert '<option value="UA">Ukraine</option>' in form.text
    response = client.post(
        f"/admin/campaigns/{campaign.slug}/officials",
        data={**OFFICIAL, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert (
        response.headers["location"] == f"/admin/campaigns/{campaign.slug}/officials?done=created"
    )
    added = target(session, "ua-president")
    assert (added.name, added.country, added.language) == ("President of Ukraine", "UA", "uk")
    assert added.delivery_channel == DeliveryChannel.email
    assert added.email == "president@example.org" and added.postal_address is None
    assert added.translations == {
        "ko": {"name": "우크라이나 대통령", "role": "대통령", "organisation": ""}
    }
    [entry] = audit(session, "target.create")
    assert entry.actor_email == organiser.email and entry.campaign_id == campaign.id
    page = client.get(response.headers["location"]).text
    assert "The official was added." in page
    assert "President of Ukraine" in page and "president@example.org" in page

    # In Korean, the console shows the official's Korean name (the role left empty: default).
    client.post("/admin/language", data={"csrf_token": csrf_of(page), "locale": "ko"})
    korean = client.get(f"/admin/campaigns/{campaign.slug}/officials").text
    assert "우크라이나 대통령" in korean and "Office of the President" in korean


def test_official_errors_come_back_next_to_their_fields(
    client: TestClient, session: Session, campaign: Campaign, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    existing = session.exec(select(Target.key).where(Target.campaign_id == campaign.id)).one()
    cases: list[tuple[dict[str, str], str, str]] = [
        ({"key": "Not A Key"}, "f-key-error", "Use lower-case letters"),
        ({"key": existing}, "f-key-error", "An official of this campaign already uses"),
        ({"name": ""}, "f-name-error", "Fill this in."),
        ({"email": "not an address"}, "f-email-error", "Enter a valid e-mail address"),
        ({"email": ""}, "f-email-error", "delivery by e-mail needs it"),
        ({"delivery_channel": "postal"}, "f-postal_address-error", "delivery by post needs it"),
        ({"language": "xx-QQ"}, "f-language-error", "Give a language code"),
        ({"country": ""}, "f-country-error", "Choose a country."),
        ({"translations.ko.name": ""}, "f-translations-ko-name-error", "Fill this in."),
    ]
    for change, error_id, message in cases:
        data = {**OFFICIAL, **change, "csrf_token": csrf}
        response = client.post(f"/admin/campaigns/{campaign.slug}/officials", data=data)
        assert response.status_code == 422, change
        assert re.search(rf'id="{error_id}">[^<]*{re.escape(message)}', response.text), (
            change,
            response.text,
        )
        assert 'value="President of Ukraine"' in response.text or change.get("name") == ""
    assert session.exec(select(Target).where(Target.key == "ua-president")).first() is None
    assert audit(session, "target.create") == []


def test_an_official_is_edited_moved_to_post_and_a_translation_removed(
    client: TestClient, session: Session, campaign: Campaign, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    client.post(
        f"/admin/campaigns/{campaign.slug}/officials", data={**OFFICIAL, "csrf_token": csrf}
    )
    official = target(session, "ua-president")
    form = client.get(f"/admin/officials/{official.id}/edit")
    assert form.status_code == 200
    assert 'value="우크라이나 대통령"' in form.text
    assert 'id="f-channel-email" name="delivery_channel" value="email" checked' in form.text
    assert 'name="remove.ko"' in form.text and 'name="remove.uk"' not in form.text

    values = {**OFFICIAL, "csrf_token": csrf_of(form.text), "delivery_channel": "postal"}
    refused = client.post(f"/admin/officials/{official.id}/edit", data=values)
    assert refused.status_code == 422
    assert re.search(r'id="f-postal_address-error">Enter the postal address', refused.text)
    session.refresh(official)
    assert official.delivery_channel == DeliveryChannel.email

    values |= {
        "postal_address": "Bankova St 11\r\nKyiv 01220",
        "email": "",
        "remove.ko": "1",
        "translations.uk.name": "Президент України",
    }
    saved = client.post(f"/admin/officials/{official.id}/edit", data=values, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    session.refresh(official)
    assert target(session, "ua-president").delivery_channel == DeliveryChannel.postal
    assert official.postal_address == "Bankova St 11\nKyiv 01220"
    assert official.email is None
    assert official.translations == {
        "uk": {"name": "Президент України", "role": "", "organisation": ""}
    }
    [entry] = audit(session, "target.update")
    assert entry.actor_email == organiser.email
    assert entry.details["translations"] == {"changed": ["uk"], "removed": ["ko"]}


def test_groups_are_created_renamed_and_list_their_officials(
    client: TestClient, session: Session, campaign: Campaign, organiser: Account
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    path = f"/admin/campaigns/{campaign.slug}/groups"
    assert client.get(f"{path}/new").status_code == 200
    created = client.post(
        path,
        data={"csrf_token": csrf, "key": "ukraine", "names.en": "Ukraine", "names.ko": ""},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    group = session.exec(select(TargetGroup).where(TargetGroup.key == "ukraine")).one()
    assert group.names == {"en": "Ukraine"}

    again = client.post(path, data={"csrf_token": csrf, "key": "ukraine", "names.en": "Other"})
    assert again.status_code == 422
    assert re.search(r'id="f-key-error">A group already uses this short name', again.text)
    bad = client.post(path, data={"csrf_token": csrf, "key": "Bad Key"})
    assert bad.status_code == 422 and 'id="f-key-error"' in bad.text

    renamed = client.post(
        f"{path}/ukraine",
        data={"csrf_token": csrf, "names.en": "Ukraine", "names.uk": "Україна"},
        follow_redirects=False,
    )
    assert renamed.status_code == 303
    session.refresh(group)
    assert group.names == {"en": "Ukraine", "uk": "Україна"}
    assert [e.action for e in audit(session, "target_group.create")] == ["target_group.create"]
    assert len(audit(session, "target_group.update")) == 1

    form = client.get(f"/admin/campaigns/{campaign.slug}/officials/new").text
    assert '<option value="ukraine">Ukraine</option>' in form
    client.post(
        f"/admin/campaigns/{campaign.slug}/officials",
        data={**OFFICIAL, "group": "ukraine", "csrf_token": csrf},
    )
    assert target(session, "ua-president").group_id == group.id
    listing = client.get(f"/admin/campaigns/{campaign.slug}/officials").text
    section = listing[listing.index('id="group-ukraine"') : listing.index('id="group--none"')]
    assert "President of Ukraine" in section and "Minister of Tests" not in section
    assert client.get(f"{path}/no-such-group").status_code == 404


def test_retiring_asks_first_then_takes_the_official_off_every_petition(
    client: TestClient, session: Session, petition: Petition, organiser: Account
) -> None:
    signed_in(client, organiser.email, organiser.password)
    [official] = petition_service.targets(session, petition_id=petition.id or 0)
    ask = client.get(f"/admin/officials/{official.id}/retire")
    assert ask.status_code == 200 and "Retire this official?" in ask.text
    session.refresh(official)
    assert official.retired_at is None
    done = client.post(
        f"/admin/officials/{official.id}/retire",
        data={"csrf_token": csrf_of(ask.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    session.refresh(official)
    assert official.retired_at is not None
    assert petition_service.targets(session, petition_id=petition.id or 0) == []
    [entry] = audit(session, "target.retire")
    assert entry.actor_email == organiser.email
    page = client.get(f"/admin/petitions/{petition.slug}").text
    assert "Minister of Tests" not in page
    assert "not addressed to any official yet" in page
    # Asking again goes back to the list: there is nothing left to retire.
    again = client.get(f"/admin/officials/{official.id}/retire", follow_redirects=False)
    assert again.status_code == 303


def test_a_petition_is_addressed_to_the_officials_ticked_in_their_order(
    client: TestClient,
    session: Session,
    petition: Petition,
    campaign: Campaign,
    organiser: Account,
) -> None:
    csrf = signed_in(client, organiser.email, organiser.password)
    client.post(
        f"/admin/campaigns/{campaign.slug}/officials", data={**OFFICIAL, "csrf_token": csrf}
    )
    [first] = petition_service.targets(session, petition_id=petition.id or 0)
    second = target(session, "ua-president")
    form = client.get(f"/admin/petitions/{petition.slug}/officials")
    assert form.status_code == 200
    assert f'name="target.{first.id}" value="1" checked' in form.text
    assert f'name="target.{second.id}" value="1">' in form.text
    assert f'name="order.{first.id}" value="1"' in form.text

    chosen = {
        "csrf_token": csrf,
        f"target.{first.id}": "1",
        f"order.{first.id}": "2",
        f"target.{second.id}": "1",
        f"order.{second.id}": "1",
    }
    response = client.post(
        f"/admin/petitions/{petition.slug}/officials", data=chosen, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/admin/petitions/{petition.slug}?done=officials"
    ordered = petition_service.targets(session, petition_id=petition.id or 0)
    assert [t.id for t in ordered] == [second.id, first.id]
    [entry] = audit(session, "petition.targets")
    assert entry.actor_email == organiser.email
    page = client.get(response.headers["location"]).text
    assert page.index("President of Ukraine") < page.index("Minister of Tests")

    # A number that is not one comes back next to its field; nothing changes.
    bad = client.post(
        f"/admin/petitions/{petition.slug}/officials",
        data={**chosen, f"order.{first.id}": "first"},
    )
    assert bad.status_code == 422
    assert re.search(rf'id="f-order-{first.id}-error">Enter a whole number', bad.text)
    assert f'name="order.{first.id}" value="first"' in bad.text

    # An official retired meanwhile (another tab): refused, nothing changes.
    client.post(
        f"/admin/officials/{first.id}/retire", data={"csrf_token": csrf}, follow_redirects=False
    )
    stale = client.post(
        f"/admin/petitions/{petition.slug}/officials",
        data={"csrf_token": csrf, f"target.{first.id}": "1"},
    )
    assert stale.status_code == 422
    assert "has been retired meanwhile" in stale.text
    assert [t.id for t in petition_service.targets(session, petition_id=petition.id or 0)] == [
        second.id
    ]

    # None ticked: the petition is addressed to nobody.
    cleared = client.post(
        f"/admin/petitions/{petition.slug}/officials",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert cleared.status_code == 303
    assert petition_service.targets(session, petition_id=petition.id or 0) == []
