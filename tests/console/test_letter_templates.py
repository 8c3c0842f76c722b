"""Letter templates in the console: the sandbox's refusals come back beside the line they
concern and nothing is saved; a correct template is saved through the templates service
(audited) and previewed as a chosen official would get it, the same letter the admin API's
preview renders; roles and CSRF as everywhere."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.letters.models import LetterTemplate
from app.petitions.models import Petition, PetitionStatus
from app.targets.models import Target
from tests.conftest import Account
from tests.console.helpers import csrf_of, signed_in
from tests.factories import make_petition


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, status=PetitionStatus.open, with_target=True)


@pytest.fixture
def campaign_slug(session: Session, petition: Petition) -> str:
    return session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()


@pytest.fixture
def organiser(make_account: Any, campaign_slug: str) -> Account:
    account: Account = make_account("organiser", [campaign_slug])
    return account


BROKEN = "Dear {{ target.name }},\n\nWe ask you to act.\n{{ petition.nope }}\nYours"
FIXED = "Dear {{ target.name }},\n\n{{ petition.confirmed_count }} people ask you to act.\nYours"


def test_a_template_with_an_error_shows_its_line_then_is_fixed_previewed_and_saved(
    client: TestClient,
    session: Session,
    petition: Petition,
    campaign_slug: str,
    organiser: Account,
) -> None:
    signed_in(client, organiser.email, organiser.password)
    listing = client.get(f"/admin/campaigns/{campaign_slug}/letter-templates")
    assert listing.status_code == 200
    assert re.search(
        r'data-testid="template-delivery-en">.*?the built-in letter', listing.text, re.S
    )
    base = f"/admin/campaigns/{campaign_slug}/letter-templates/delivery/en"
    page = client.get(base)
    assert page.status_code == 200
    assert "<code>petition.confirmed_count</code>" in page.text  # the variables available
    target_id = session.exec(
        select(Target.id).where(Target.campaign_id == petition.campaign_id)
    ).one()
    form = {"subject": "To {{ target.name }}", "body": BROKEN, "csrf_token": csrf_of(page.text)}

    refused = client.post(base, data={**form, "step": "save"})
    assert refused.status_code == 422
    row = re.search(r'data-testid="problem-line-4">(.*?)</tr>', refused.text, re.S)
    assert row, refused.text
    assert "petition.nope" in row[1] and "nope" in row[1].split("</code>")[1]
    assert 'id="f-body-error"' in refused.text
    assert session.exec(select(LetterTemplate)).first() is None

    preview = client.post(
        base, data={**form, "body": FIXED, "official": str(target_id), "step": "preview"}
    )
    assert preview.status_code == 200, preview.text
    shown = re.search(r'data-testid="preview-text" lang="en">(.*?)</pre>', preview.text, re.S)
    assert shown
    api = client.post(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/delivery/en/preview",
        json={"target_id": target_id, "subject": form["subject"], "body": FIXED},
        headers=organiser.headers,
    )
    assert api.status_code == 200, api.text
    assert html.unescape(shown[1]) == api.json()["text"]
    assert "Dear Minister of Tests," in shown[1]
    assert session.exec(select(LetterTemplate)).first() is None  # a preview saves nothing

    no_official = client.post(base, data={**form, "body": FIXED, "step": "preview"})
    assert no_official.status_code == 422
    assert 'id="f-official-error">Choose the official' in no_official.text

    saved = client.post(base, data={**form, "body": FIXED, "step": "save"}, follow_redirects=False)
    assert saved.status_code == 303
    assert "The template is saved." in client.get(saved.headers["location"]).text
    [template] = session.exec(select(LetterTemplate)).all()
    assert template.body == FIXED and template.language == "en"
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "letter_template.save"))
    assert entry.actor_email == organiser.email


def test_roles_csrf_and_unknown_kinds(
    client: TestClient, session: Session, campaign_slug: str, organiser: Account, make_account: Any
) -> None:
    other = make_petition(session, status=PetitionStatus.open)
    other_slug = session.exec(select(Campaign.slug).where(Campaign.id == other.campaign_id)).one()
    stranger: Account = make_account("organiser", [other_slug])
    base = f"/admin/campaigns/{campaign_slug}/letter-templates"
    assert client.get(base, follow_redirects=False).status_code == 303

    csrf = signed_in(client, stranger.email, stranger.password)
    assert client.get(base).status_code == 404
    assert client.get(f"{base}/delivery/en").status_code == 404
    data = {"subject": "S", "body": FIXED, "step": "save", "csrf_token": csrf}
    assert client.post(f"{base}/delivery/en", data=data).status_code == 404
    client.post("/admin/logout", data={"csrf_token": csrf})

    signed_in(client, organiser.email, organiser.password)
    assert client.get(f"{base}/letter/en").status_code == 404
    assert client.get(f"{base}/delivery/not a language").status_code == 404
    data = {"subject": "S", "body": FIXED, "step": "save"}
    assert client.post(f"{base}/delivery/en", data=data).status_code == 403
    assert session.exec(select(LetterTemplate)).first() is None


def test_a_saved_template_is_deleted_after_confirming_and_the_built_in_letter_is_back(
    client: TestClient, session: Session, campaign_slug: str, organiser: Account
) -> None:
    base = f"/admin/campaigns/{campaign_slug}/letter-templates/delivery/en"
    csrf = signed_in(client, organiser.email, organiser.password)
    built_in = client.get(base).text
    assert 'data-testid="delete"' not in built_in  # nothing of the campaign's own to delete
    assert client.get(f"{base}/delete", follow_redirects=False).status_code == 303

    data = {"subject": "Our petition", "body": FIXED, "step": "save", "csrf_token": csrf}
    assert client.post(base, data=data, follow_redirects=False).status_code == 303
    editor = client.get(base).text
    assert "people ask you to act." in editor and 'data-testid="delete"' in editor

    ask = client.get(f"{base}/delete")
    assert ask.status_code == 200
    assert "Delete this letter template?" in ask.text
    assert "will use the built-in letter again" in ask.text
    assert client.post(f"{base}/delete", data={}).status_code == 403  # no CSRF token
    assert session.exec(select(LetterTemplate)).first() is not None

    done = client.post(f"{base}/delete", data={"csrf_token": csrf_of(ask.text)})
    assert done.status_code == 200
    assert "The template was deleted." in done.text
    assert "people ask you to act." not in done.text  # the built-in letter again
    assert 'data-testid="delete"' not in done.text
    session.expire_all()
    assert session.exec(select(LetterTemplate)).first() is None
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "letter_template.delete"))
    assert entry.actor_email == organiser.email
    # Sent again: nothing left to delete, no error.
    again = client.post(f"{base}/delete", data={"csrf_token": csrf_of(ask.text)})
    assert again.status_code == 200 and "The template was deleted." not in again.text
