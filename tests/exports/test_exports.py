"""Signature exports: formats, filters, spreadsheet safety, flat memory, access, audit, CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session, col, select

from app.audit.models import AuditEntry
from app.campaigns.models import Campaign
from app.core.config import Settings
from app.core.db import utcnow
from app.exports.service import COLUMNS
from app.petitions.models import Petition
from app.signatures.models import Signature, SignatureStatus
from tests.conftest import Account
from tests.factories import make_petition

_seq = itertools.count(1)
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def url(petition: Petition) -> str:
    return f"/api/v1/admin/petitions/{petition.slug}/signatures"


def add_signature(session: Session, petition: Petition, **overrides: Any) -> Signature:
    """A signature stored as the signing service stores it (bypassing its input rules)."""
    n = next(_seq)
    assert petition.id is not None
    email = overrides.pop("email", f"supporter{n}@example.org")
    status = overrides.pop("status", SignatureStatus.confirmed)
    created_at = overrides.pop("created_at", T0)
    data: dict[str, Any] = {
        "petition_id": petition.id,
        "name": "Jane Doe",
        "email": email,
        "email_normalised": email.lower(),
        "country": "GB",
        "locale": "en",
        "status": status,
        "created_at": created_at,
        "confirmed_at": created_at + timedelta(minutes=5)
        if status != SignatureStatus.pending
        else None,
    }
    data.update(overrides)
    signature = Signature(**data)
    session.add(signature)
    session.commit()
    return signature


def bulk_insert(session: Session, rows: Iterable[dict[str, Any]], chunk: int = 10_000) -> None:
    """Insert many signatures fast: executemany, `chunk` rows at a time, in one transaction.

    (The `session` fixture commits every statement; row by row, that is one commit per row.)
    """
    table = Signature.__table__  # type: ignore[attr-defined]
    session.connection(execution_options={"isolation_level": "SERIALIZABLE"})
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, chunk)):
        session.execute(insert(table), batch)
    session.commit()


def campaign_slug(session: Session, petition: Petition) -> str:
    campaign = session.get(Campaign, petition.campaign_id)
    assert campaign is not None
    return campaign.slug


def export(client: TestClient, account: Account, petition: Petition, **params: Any) -> Any:
    return client.get(url(petition), params=params, headers=account.headers)


def ndjson(client: TestClient, account: Account, petition: Petition, **params: Any) -> list[Any]:
    response = export(client, account, petition, format="ndjson", **params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def emails(records: list[dict[str, Any]]) -> set[str]:
    return {r["email"] for r in records}


def csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


# --- formats ---------------------------------------------------------------------------------


@pytest.fixture
def petition(session: Session) -> Petition:
    return make_petition(session, slug="no-forced-return", locales=("en", "ko", "uk"))


def test_csv_has_every_column_and_korean_and_ukrainian_names_round_trip(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    kim = add_signature(
        session,
        petition,
        name="김민준",
        email="kim@example.org",
        country="KR",
        postcode="03154",
        consent_updates=True,
        locale="ko",
    )
    olena = add_signature(
        session,
        petition,
        name="Олена Коваленко",
        email="olena@example.org",
        country="UA",
        locale="uk",
        status=SignatureStatus.pending,
    )
    gone = add_signature(
        session,
        petition,
        name="Removed Person",
        email="removed@example.org",
        postcode="SW1A 1AA",
        anonymised_at=T0 + timedelta(days=200),
    )

    response = export(client, admin, petition, format="csv")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    today = utcnow().date().isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="no-forced-return-signatures-{today}.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert not response.content.startswith(b"\xef\xbb\xbf")  # no BOM unless asked
    rows = csv_rows(response.content.decode("utf-8"))
    assert rows == [
        {
            "id": str(kim.id),
            "name": "김민준",
            "email": "kim@example.org",
            "country": "KR",
            "postcode": "03154",
            "status": "confirmed",
            "consent_updates": "true",
            "locale": "ko",
            "created_at": "2026-11-23T09:30:00Z",
            "confirmed_at": "2026-11-23T09:35:00Z",
        },
        {
            "id": str(olena.id),
            "name": "Олена Коваленко",
            "email": "olena@example.org",
            "country": "UA",
            "postcode": "",
            "status": "pending",
            "consent_updates": "false",
            "locale": "uk",
            "created_at": "2026-11-23T09:30:00Z",
            "confirmed_at": "",
        },
        {
            "id": str(gone.id),
            "name": "",  # anonymised: no personal data
            "email": "",
            "country": "GB",
            "postcode": "",
            "status": "confirmed",
            "consent_updates": "false",
            "locale": "en",
            "created_at": "2026-11-23T09:30:00Z",
            "confirmed_at": "2026-11-23T09:35:00Z",
        },
    ]


def test_bom_for_excel(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    add_signature(session, petition, name="Олена Коваленко", country="UA")
    response = export(client, admin, petition, format="csv", bom="true")
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf")
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeffid,name,email,")
    assert csv_rows(text[1:])[0]["name"] == "Олена Коваленко"
    # A BOM belongs to CSV only: JSON never gets one.
    as_json = export(client, admin, petition, format="json", bom="true")
    assert as_json.content.startswith(b"[")


def test_ndjson_and_json_keep_types(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    kim = add_signature(
        session, petition, name="김민준", email="kim@example.org", country="KR", locale="ko"
    )
    pending = add_signature(session, petition, name="Олена", status=SignatureStatus.pending)
    gone = add_signature(session, petition, postcode="SW1A 1AA", anonymised_at=T0)

    response = export(client, admin, petition, format="ndjson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"].endswith('.ndjson"')
    assert "김민준".encode() in response.content  # UTF-8, not \u escapes
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [r["id"] for r in lines] == [kim.id, pending.id, gone.id]
    assert all(tuple(r) == COLUMNS for r in lines)
    assert lines[0] == {
        "id": kim.id,
        "name": "김민준",
        "email": "kim@example.org",
        "country": "KR",
        "postcode": None,
        "status": "confirmed",
        "consent_updates": False,
        "locale": "ko",
        "created_at": "2026-11-23T09:30:00Z",
        "confirmed_at": "2026-11-23T09:35:00Z",
    }
    assert lines[1]["confirmed_at"] is None
    assert (lines[2]["name"], lines[2]["email"], lines[2]["postcode"]) == ("", "", None)

    as_json = export(client, admin, petition, format="json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["content-disposition"].endswith('.json"')
    assert as_json.json() == lines

    other = make_petition(session)
    empty = export(client, admin, other, format="json")
    assert empty.json() == []
    assert export(client, admin, other, format="ndjson").content == b""
    assert csv_rows(export(client, admin, other).text) == []  # csv is the default


# --- filters ---------------------------------------------------------------------------------


def test_filters(client: TestClient, session: Session, admin: Account, petition: Petition) -> None:
    add_signature(session, petition, email="kr-old@example.org", country="KR", created_at=T0)
    add_signature(
        session,
        petition,
        email="ua-pending@example.org",
        country="UA",
        status=SignatureStatus.pending,
        created_at=T0 + timedelta(days=1),
    )
    add_signature(
        session,
        petition,
        email="de-withdrawn@example.org",
        country="DE",
        status=SignatureStatus.withdrawn,
        created_at=T0 + timedelta(days=2),
    )
    add_signature(
        session,
        petition,
        email="ua-consent@example.org",
        country="UA",
        consent_updates=True,
        created_at=T0 + timedelta(days=3),
    )
    other = make_petition(session)
    add_signature(session, other, email="elsewhere@example.org", country="KR")

    everything = ndjson(client, admin, petition)
    assert len(everything) == 4
    assert "elsewhere@example.org" not in emails(everything)

    assert emails(ndjson(client, admin, petition, status="pending")) == {"ua-pending@example.org"}
    assert emails(ndjson(client, admin, petition, status="withdrawn")) == {
        "de-withdrawn@example.org"
    }
    assert emails(ndjson(client, admin, petition, status="confirmed")) == {
        "kr-old@example.org",
        "ua-consent@example.org",
    }

    # Countries: repeated, as a comma list, in any case.
    repeated = ndjson(client, admin, petition, country=["KR", "de"])
    assert emails(repeated) == {"kr-old@example.org", "de-withdrawn@example.org"}
    assert emails(ndjson(client, admin, petition, country="kr, DE")) == emails(repeated)
    assert len(ndjson(client, admin, petition, country="UA")) == 2

    # Dates: from inclusive, to exclusive; an offset is honoured, none means UTC.
    assert emails(
        ndjson(
            client,
            admin,
            petition,
            created_from=(T0 + timedelta(days=1)).isoformat(),
            created_to="2026-11-26T09:30:00",
        )
    ) == {"ua-pending@example.org", "de-withdrawn@example.org"}
    seoul = "2026-11-24T18:30:00+09:00"  # 09:30 UTC on the 24th
    assert emails(ndjson(client, admin, petition, created_to=seoul)) == {"kr-old@example.org"}
    # "+" unencoded in a query string reads as a space; that is understood too.
    spaced = client.get(
        url(petition) + "?format=ndjson&created_to=2026-11-24T18:30:00 09:00",
        headers=admin.headers,
    )
    assert spaced.status_code == 200
    assert len(spaced.text.splitlines()) == 1
    assert len(ndjson(client, admin, petition, created_from="2026-11-26")) == 1  # a date alone

    assert emails(ndjson(client, admin, petition, consent_updates="true")) == {
        "ua-consent@example.org"
    }
    assert len(ndjson(client, admin, petition, consent_updates="false")) == 3

    # Filters combine.
    assert emails(
        ndjson(client, admin, petition, country="UA", status="confirmed", consent_updates="true")
    ) == {"ua-consent@example.org"}
    assert ndjson(client, admin, petition, country="DE", status="confirmed") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "deleted"}, "status"),
        ({"format": "xlsx"}, "format"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_to": "2026-13-45"}, "created_to"),
        ({"created_from": "0001-01-01T00:00:00+05:00"}, "created_from"),
        ({"created_from": "2026-12-01", "created_to": "2026-11-01"}, "created_to"),
        ({"country": "ZZ"}, "country"),
        ({"country": "KR,Korea"}, "country"),
        ({"consent_updates": "maybe"}, "consent_updates"),
        ({"bom": "please"}, "bom"),
    ],
)
def test_bad_filter_values_are_422_problems(
    client: TestClient, admin: Account, petition: Petition, params: dict[str, str], field: str
) -> None:
    response = export(client, admin, petition, **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"] == "https://chorus.example.org/problems/validation"
    assert [e["field"] for e in problem["errors"]] == [field]


# --- spreadsheet safety ----------------------------------------------------------------------

HOSTILE = [
    '=HYPERLINK("http://evil.example","Click")',
    "@SUM(1)",
    "+1+2",
    "-2+3",
    "\t=1",
    "\r=1",
    "   =1+1",  # after leading spaces too
]


def test_formula_cells_are_inert_in_csv_and_raw_in_json(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    for n, value in enumerate(HOSTILE):
        add_signature(session, petition, name=value, email=f"=cmd{n}@example.org", postcode="=1+1")
    add_signature(session, petition, name="Kim Min-jun", email="kim@example.org", postcode="A-1")

    response = export(client, admin, petition, format="csv")
    rows = csv_rows(response.content.decode())
    assert [r["name"] for r in rows] == ["'" + value for value in HOSTILE] + ["Kim Min-jun"]
    for row in rows[:-1]:
        assert row["email"].startswith("'=cmd")
        assert row["postcode"] == "'=1+1"
        for value in row.values():
            assert not value.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r"))
    assert (rows[-1]["email"], rows[-1]["postcode"]) == ("kim@example.org", "A-1")

    records = ndjson(client, admin, petition)
    assert [r["name"] for r in records] == [*HOSTILE, "Kim Min-jun"]
    assert records[0]["email"] == "=cmd0@example.org"
    assert records[0]["postcode"] == "=1+1"


# --- size ------------------------------------------------------------------------------------

LARGE = 100_000


def test_a_large_export_streams_in_flat_memory(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    assert petition.id is not None
    bulk_insert(
        session,
        (
            {
                "petition_id": petition.id,
                "name": f"Олена Коваленко 김민준 {i}",
                "email": f"supporter-{i:06d}@example.org",
                "email_normalised": f"supporter-{i:06d}@example.org",
                "country": "UA" if i % 2 else "KR",
                "postcode": "03154",
                "consent_updates": i % 3 == 0,
                "locale": "uk",
                "status": "confirmed",
                "created_at": T0,
                "confirmed_at": T0,
                "confirmation_sends": 1,
            }
            for i in range(LARGE)
        ),
    )

    size = lines = 0
    tracemalloc.start()
    try:
        with client.stream("GET", url(petition), headers=admin.headers) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == LARGE + 1  # the header and every row
    assert size > 8_000_000
    assert peak < size / 3, f"peak {peak:,} bytes of Python memory for {size:,} bytes of output"
    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "signatures.export"))
    assert entry.details["row_count"] == LARGE


# --- who may export, and the audit log -------------------------------------------------------


def test_only_the_campaigns_organisers_and_admins_may_export(
    client: TestClient, session: Session, make_account: Any, petition: Petition
) -> None:
    add_signature(session, petition, email="kim@example.org")
    other = make_petition(session)
    outsider: Account = make_account("organiser", [campaign_slug(session, other)])
    organiser: Account = make_account("organiser", [campaign_slug(session, petition)])

    assert client.get(url(petition)).status_code == 401
    assert client.get(url(petition), headers={"Authorization": "Bearer nope"}).status_code == 401

    refused = export(client, outsider, petition)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert export(client, outsider, petition, country="ZZ").status_code == 404  # nothing leaks

    allowed = export(client, organiser, petition)
    assert allowed.status_code == 200
    assert [r["email"] for r in csv_rows(allowed.text)] == ["kim@example.org"]
    assert export(client, organiser, other).status_code == 404

    # No audit entry for refused exports.
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == "signatures.export"))
    assert [e.actor_email for e in entries] == [organiser.email]


def test_unknown_petition_is_404(client: TestClient, admin: Account) -> None:
    response = client.get("/api/v1/admin/petitions/nope/signatures", headers=admin.headers)
    assert response.status_code == 404


def audit_exports(client: TestClient, account: Account) -> list[dict[str, Any]]:
    response = client.get("/api/v1/admin/audit", headers=account.headers)
    assert response.status_code == 200
    return [e for e in response.json() if e["action"] == "signatures.export"]


def test_exports_are_in_the_audit_log(
    client: TestClient, session: Session, make_account: Any, admin: Account, petition: Petition
) -> None:
    for n in range(3):
        add_signature(session, petition, country="KR" if n else "UA")
    organiser: Account = make_account("organiser", [campaign_slug(session, petition)])

    response = export(client, organiser, petition, format="csv", bom="true", country="kr")
    assert response.status_code == 200

    [entry] = audit_exports(client, admin)
    assert entry["actor_email"] == organiser.email
    assert entry["subject"] == "petition:no-forced-return"
    assert entry["details"] == {
        "format": "csv",
        "filters": {"country": ["KR"]},
        "bom": True,
        "completed": True,
        "row_count": 2,
    }
    # The organiser sees it too (it belongs to their campaign).
    assert [e["id"] for e in audit_exports(client, organiser)] == [entry["id"]]
    stored = session.get(AuditEntry, entry["id"])
    assert stored is not None and stored.campaign_id == petition.campaign_id

    export(client, admin, petition, format="json", status="pending", created_from="2026-11-01")
    latest = audit_exports(client, admin)[0]
    assert latest["details"] == {
        "format": "json",
        "filters": {"status": "pending", "created_from": "2026-11-01T00:00:00Z"},
        "bom": False,
        "completed": True,
        "row_count": 0,
    }


def test_an_interrupted_download_stays_not_completed(
    client: TestClient, session: Session, admin: Account, petition: Petition
) -> None:
    assert petition.id is not None
    bulk_insert(
        session,
        (
            {
                "petition_id": petition.id,
                "name": "Jane Doe",
                "email": f"s{i}@example.org",
                "email_normalised": f"s{i}@example.org",
                "country": "GB",
                "postcode": None,
                "consent_updates": False,
                "locale": "en",
                "status": "confirmed",
                "created_at": T0,
                "confirmed_at": T0,
                "confirmation_sends": 1,
            }
            for i in range(5000)
        ),
    )
    with client.stream("GET", url(petition), headers=admin.headers) as response:
        assert response.status_code == 200
        next(response.iter_bytes())  # the header, then hang up

    # Written before the first byte, in the request's transaction.
    [entry] = audit_exports(client, admin)
    assert entry["details"]["completed"] is False
    assert "row_count" not in entry["details"]


# --- the command line ------------------------------------------------------------------------


def run_export(
    settings: Settings, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CHORUS_"))}
    env.update({"DATABASE_URL": settings.DATABASE_URL, "LOG_LEVEL": "WARNING"})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "export", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_export_command_writes_a_file_and_an_audit_entry(
    session: Session, settings: Settings, petition: Petition, tmp_path: Path
) -> None:
    kim = add_signature(session, petition, name="김민준", country="KR", email="kim@example.org")
    add_signature(session, petition, name="Олена", country="UA", status=SignatureStatus.pending)
    add_signature(session, petition, name="=HYPERLINK(1)", country="KR", consent_updates=True)
    output = tmp_path / "kr.csv"

    result = run_export(
        settings,
        "no-forced-return",
        "--output",
        str(output),
        "--country",
        "KR",
        "--no-consent-updates",
        "--bom",
    )

    assert result.returncode == 0, result.stderr
    assert f"1 signature(s) written to {output}" in result.stdout
    data = output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = csv_rows(data.decode("utf-8")[1:])
    assert [(r["id"], r["name"], r["country"]) for r in rows] == [(str(kim.id), "김민준", "KR")]
    assert not list(tmp_path.glob("*.part"))

    [entry] = session.exec(select(AuditEntry).where(AuditEntry.action == "signatures.export"))
    assert entry.actor_id is None
    assert entry.actor_email is not None and entry.actor_email.startswith("cli:")
    assert entry.subject == "petition:no-forced-return"
    assert entry.campaign_id == petition.campaign_id
    assert entry.details == {
        "format": "csv",
        "filters": {"country": ["KR"], "consent_updates": False},
        "bom": True,
        "completed": True,
        "row_count": 1,
    }

    # The default file name, in the working directory; NDJSON with a status filter.
    result = run_export(
        settings, "no-forced-return", "--format", "ndjson", "--status", "pending", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    today = utcnow().date().isoformat()
    written = tmp_path / f"no-forced-return-signatures-{today}.ndjson"
    [record] = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert (record["name"], record["status"]) == ("Олена", "pending")
    entries = session.exec(
        select(AuditEntry)
        .where(AuditEntry.action == "signatures.export")
        .order_by(col(AuditEntry.id))
    ).all()
    assert len(entries) == 2
    assert entries[1].details["row_count"] == 1


def test_the_export_command_refuses_an_unknown_petition_and_bad_filters(
    settings: Settings, session: Session, petition: Petition, tmp_path: Path
) -> None:
    result = run_export(settings, "no-such-petition", cwd=tmp_path)
    assert result.returncode == 1
    assert "No petition called 'no-such-petition'" in result.stderr
    assert list(tmp_path.iterdir()) == []

    result = run_export(settings, "no-forced-return", "--country", "ZZ", cwd=tmp_path)
    assert result.returncode == 2
    assert "--country" in result.stderr
    result = run_export(settings, "no-forced-return", "-o", str(tmp_path / "nowhere" / "x.csv"))
    assert result.returncode == 2
    assert "--output" in result.stderr
    assert list(tmp_path.iterdir()) == []
    assert session.exec(select(AuditEntry)).all() == []
