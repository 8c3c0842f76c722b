"""Reading the OSDI API as a client does, and the OSDI 1.1 field names it is checked against."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.campaigns.models import Campaign
from app.petitions.models import Petition
from tests.conftest import Account, Mailbox, confirm_link

AEP = "/api/osdi/v1/"

# OSDI 1.1 (opensupporter/osdi-docs): the fields each document may have.
COMMON = {"identifiers", "origin_system", "created_date", "modified_date", "_links"}
COLLECTION = {"total_pages", "per_page", "page", "total_records", "_links", "_embedded"}
AEP_FIELDS = {
    "motd",
    "max_pagesize",
    "vendor_name",
    "product_name",
    "osdi_version",
    "namespace",
    "_links",
}
PETITION = COMMON | {
    "name",
    "title",
    "description",
    "summary",
    "petition_text",
    "browser_url",
    "total_signatures",
    "target",
}
SIGNATURE = COMMON | {"action_date", "comments", "referrer_data"}
PERSON = COMMON | {
    "family_name",
    "given_name",
    "additional_name",
    "honorific_prefix",
    "honorific_suffix",
    "gender",
    "gender_identity",
    "party_identification",
    "source",
    "birthdate",
    "ethnicities",
    "languages_spoken",
    "employer",
    "occupation",
    "postal_addresses",
    "email_addresses",
    "phone_numbers",
    "profiles",
    "custom_fields",
}
EMAIL_ADDRESS = {"primary", "address", "address_type", "status"}
EMAIL_STATUSES = {
    "subscribed",
    "unsubscribed",
    "bouncing",
    "previous bounce",
    "spam complaint",
    "previous spam complaint",
}
POSTAL_ADDRESS = {
    "primary",
    "address_type",
    "venue",
    "address_lines",
    "locality",
    "region",
    "postal_code",
    "country",
    "language",
    "location",
    "status",
}
CURIE = {
    "name": "osdi",
    "href": "https://github.com/opensupporter/osdi-docs/blob/master/{rel}.md",
    "templated": True,
}


def osdi_fields(document: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    """The document uses OSDI's field names only, and has the ones Chorus always fills."""
    assert set(document) <= allowed, set(document) - allowed
    assert required <= set(document), required - set(document)


def link_names(document: dict[str, Any]) -> set[str]:
    return set(document["_links"])


def read(client: TestClient, account: Account, href: str) -> dict[str, Any]:
    """GET a link as an OSDI client does (absolute, with the OSDI-API-Token header)."""
    token = account.headers["Authorization"].removeprefix("Bearer ")
    response = client.get(href, headers={"OSDI-API-Token": token})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/hal+json"
    document: dict[str, Any] = response.json()
    return document


def campaign_slug(session: Session, petition: Petition) -> str:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign.slug


def sign_and_confirm(
    client: TestClient, smtp: Mailbox, outbox: Any, slug: str, **data: Any
) -> None:
    """Sign through the public API, then confirm with the link the e-mail carries."""
    smtp.clear()
    response = client.post(f"/api/v1/petitions/{slug}/signatures", json=data)
    assert response.status_code == 202, response.text
    outbox()
    [message] = smtp.wait_for(1)
    assert client.post(confirm_link(message)).status_code == 200
