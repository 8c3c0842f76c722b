"""Letter templates run on a budget: refused at save when they cannot fit it, stopped fast when
they exceed it, and never holding up other mail or a request thread."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.core.config import Settings
from app.email.models import OutboxMessage, OutboxStatus
from app.letters import engine as letters_engine
from app.letters.models import LetterDelivery, LetterTemplate, TemplateKind
from app.petitions.models import Petition
from tests.conftest import Account, Mailbox, body_text
from tests.factories import signer
from tests.worker_thread import worker_running

# Saved with 200 in the attack run: one letter of ~5,000 characters took 73 s to render.
QUADRATIC = "{{ message }}{% for c in message %}{{ message|striptags|length }}{% endfor %}"
# A supporter's message of 5,000 characters, with markup (which striptags works hardest on).
TAGGED = ("<b>Please</b> help. " * 300)[:5000]


@pytest.fixture
def campaign_slug(demo: Petition, session: Session) -> str:
    from app.campaigns import service as campaign_service

    return campaign_service.slug_of(session, campaign_id=demo.campaign_id)


def put(client: TestClient, account: Account, slug: str, body: str, subject: str = "Hi") -> Any:
    return client.put(
        f"/api/v1/admin/campaigns/{slug}/letter-templates/supporter/en",
        json={"subject": subject, "body": body},
        headers=account.headers,
    )


def store_unchecked(session: Session, petition: Petition, body: str) -> None:
    """The campaign's English supporter template, as one saved before these checks existed."""
    template = session.exec(
        select(LetterTemplate).where(
            LetterTemplate.campaign_id == petition.campaign_id,
            LetterTemplate.kind == TemplateKind.supporter,
            LetterTemplate.language == "en",
        )
    ).one()
    template.body = body
    session.add(template)
    session.commit()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (QUADRATIC, "body: line 1: a loop may only go over a list"),
        # Deep chains made the checks recurse until Python gave up: a 500.
        ("{{ message }}\n{{ " + " + ".join(["1"] * 2000) + " }}", "line 2: expressions are nested"),
        ("{{ message }}\n{{ message" + "|lower" * 1500 + " }}", "line 2: expressions are nested"),
        ("{% autoescape false %}{{ message }}{% endautoescape %}", "{% autoescape %} is not"),
        ("{{ message }}{% autoescape true %}x{% endautoescape %}", "{% autoescape %} is not"),
        # Fine with the short sample text, far too big with a real supporter's message.
        ("{{ message|join(message) }}", "grows too long (with a 10,000-character message)"),
        ("{{ message }}{{ " + " ~ ".join(["message"] * 11) + " }}", "grows too long"),
    ],
)
def test_templates_that_cannot_fit_the_budget_are_refused_at_save(
    client: TestClient, admin: Account, campaign_slug: str, body: str, expected: str
) -> None:
    started = time.monotonic()
    response = put(client, admin, campaign_slug, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert expected in response.json()["detail"]
    assert time.monotonic() - started < 2


def test_the_checks_refuse_no_ordinary_template(
    client: TestClient, admin: Account, campaign_slug: str
) -> None:
    body = (
        "Dear {{ target.name }},\n\n{{ message }}\n\n"
        "{{ (petition.confirmed_count + " + " + ".join(["1"] * 20) + ")|number }} people agree.\n"
        "{{ supporter.name ~ ', ' ~ supporter.city }}{{ message|wordcount }}"
    )
    response = put(client, admin, campaign_slug, body, subject="{{ petition.title|upper }}")
    assert response.status_code == 200, response.text


def test_a_stored_template_over_its_budget_stops_fast_with_the_reason() -> None:
    """A template saved before the checks: the render stops at its budget, not 73 s later."""
    started = time.monotonic()
    with pytest.raises(letters_engine.TemplateProblem) as problem:
        letters_engine.render("Hi", QUADRATIC, {"message": TAGGED})
    assert time.monotonic() - started < 0.5
    assert problem.value.describe().startswith("body, line 1: the template does too much work")


def test_the_wall_clock_stops_a_render_the_steps_would_allow(monkeypatch: Any) -> None:
    monkeypatch.setattr(letters_engine, "MAX_WORK", 10**15)
    started = time.monotonic()
    with pytest.raises(letters_engine.TemplateProblem) as problem:
        letters_engine.render("Hi", QUADRATIC, {"message": "<>" * 5000})
    elapsed = time.monotonic() - started
    assert letters_engine.RENDER_SECONDS <= elapsed < letters_engine.RENDER_SECONDS + 1
    assert "takes too long to render (more than 2 seconds)" in problem.value.describe()


def test_concatenation_is_sized_before_it_is_built() -> None:
    with pytest.raises(letters_engine.TemplateProblem, match="grows too long"):
        letters_engine.render(
            "s", "{{ " + " ~ ".join(["message"] * 11) + " }}", {"message": "x" * 10_000}
        )
    ok = letters_engine.render("s", "{{ message ~ '!' ~ 1 }}", {"message": "<b>"})
    assert (ok.text, ok.html.count("&lt;b&gt;!1")) == ("<b>!1", 1)


def test_a_preview_of_a_template_over_budget_answers_a_problem_quickly(
    client: TestClient, session: Session, admin: Account, demo: Petition, campaign_slug: str
) -> None:
    store_unchecked(session, demo, QUADRATIC)
    targets = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/targets", headers=admin.headers
    ).json()["data"]
    url = f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/supporter/en/preview"
    started = time.monotonic()
    saved = client.post(
        url, json={"target_id": targets[0]["id"], "message": TAGGED}, headers=admin.headers
    )
    assert time.monotonic() - started < 2
    assert saved.status_code == 422, saved.text
    assert "body: line 1: the template does too much work" in saved.json()["detail"]
    unsaved = client.post(
        url,
        json={"target_id": targets[0]["id"], "subject": "Hi", "body": QUADRATIC},
        headers=admin.headers,
    )
    assert unsaved.status_code == 422
    assert time.monotonic() - started < 2


def test_a_letter_over_budget_fails_with_its_reason_and_other_mail_goes_on(
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    smtp: Mailbox,
    outbox: Any,
    admin: Account,
    demo: Petition,
) -> None:
    # A supporter writes, and confirms, while the template still was the one of the attack.
    store_unchecked(session, demo, QUADRATIC)
    written = client.post(
        f"/api/v1/petitions/{demo.slug}/letters",
        json={
            "name": "Ji-woo Park",
            "email": "jiwoo@example.org",
            "country": "KR",
            "targets": ["ua-president", "kr-mofa"],
            "message": TAGGED,
            "locale": "en",
        },
    )
    assert written.status_code == 202, written.text
    outbox()
    [confirmation] = smtp.wait_for(1)
    link = next(line for line in body_text(confirmation).splitlines() if "/letters/" in line)
    assert client.post(link.strip().removeprefix("http://testserver")).status_code == 200
    smtp.clear()
    # Signers' confirmations, queued behind the two letters.
    for n in range(5):
        response = client.post(
            f"/api/v1/petitions/{demo.slug}/signatures",
            json=signer(email=f"signer{n}@example.org"),
        )
        assert response.status_code == 202, response.text
    letters = session.exec(select(LetterDelivery)).all()
    assert len(letters) == 2

    with worker_running(settings, engine, WORKER_CONCURRENCY=1):
        started = time.monotonic()
        delivered = smtp.wait_for(5, timeout=15)
        delay = time.monotonic() - started
        assert delay < 5, f"confirmations waited {delay:.1f}s behind the letters"
        assert {str(m["To"]).rpartition("<")[2].rstrip(">") for m in delivered} == {
            f"signer{n}@example.org" for n in range(5)
        }
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "letter")).all()
            if all(row.status != OutboxStatus.pending for row in rows):
                break
            time.sleep(0.05)
    # Failed at once, not retried (it would fail the same way, spending the budget again).
    assert [(row.status, row.attempts) for row in rows] == [(OutboxStatus.failed, 1)] * 2
    log = client.get(f"/api/v1/admin/petitions/{demo.slug}/letters", headers=admin.headers)
    entries = log.json()["data"]
    assert [e["state"] for e in entries] == ["failed", "failed"]
    assert all(
        "template fails: body, line 1: the template does too much work" in e["reason"]
        for e in entries
    )
    assert len(smtp.messages) == 5  # no letter went out
