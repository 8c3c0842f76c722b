"""Organisers' letter templates: checked at save, previewed, rendered in the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.letters import defaults, engine, templates
from app.letters.models import TemplateKind
from app.petitions.models import Petition
from tests.conftest import Account

FRAME = (
    "Dear {{ target.name }},\n\n{{ message }}\n\nYours,\n{{ supporter.name }}, {{ supporter.city }}"
)


def put(client: TestClient, account: Account, slug: str, body: str, **extra: Any) -> Any:
    return client.put(
        f"/api/v1/admin/campaigns/{slug}/letter-templates/supporter/en",
        json={"subject": "About {{ petition.title }}", "body": body, **extra},
        headers=account.headers,
    )


@pytest.fixture
def campaign_slug(demo: Petition, session: Session) -> str:
    from app.campaigns import service as campaign_service

    return campaign_service.slug_of(session, campaign_id=demo.campaign_id)


def test_a_template_is_saved_listed_and_previewed_for_a_target(
    client: TestClient, admin: Account, campaign_slug: str
) -> None:
    saved = put(client, admin, campaign_slug, FRAME, message="Please protect them.")
    assert saved.status_code == 200, saved.text
    listed = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates", headers=admin.headers
    ).json()
    assert {(t["kind"], t["language"]) for t in listed["data"]} >= {("supporter", "en")}
    assert "message" in listed["variables"]["supporter"]
    targets = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/targets", headers=admin.headers
    ).json()["data"]
    president = next(t for t in targets if t["key"] == "ua-president")
    preview = client.post(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/supporter/en/preview",
        json={
            "target_id": president["id"],
            "supporter": {"name": "Ji-woo Park", "city": "Busan", "country": "KR"},
            "message": "I ask you <b>today</b> to act.",
        },
        headers=admin.headers,
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["subject"].startswith("About Protect")
    assert shown["text"].startswith("Dear President of Ukraine,")
    assert "I ask you <b>today</b> to act." in shown["text"]  # plain text stays as written
    assert "Ji-woo Park, Busan" in shown["text"]
    # In HTML, what supporters wrote is escaped: no markup of theirs reaches an official.
    assert "&lt;b&gt;today&lt;/b&gt;" in shown["html"]
    assert "<b>" not in shown["html"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Dear {{ target.name }},\n\n{{ message }\n", "body: line 3: syntax error"),
        ("Dear {{ official }},\n{{ message }}", "body: line 1: unknown variable 'official'"),
        (
            "Dear {{ target.name }},\n{{ message }}\n{{ target.nmae }}",
            "body: line 3: unknown field 'target.nmae'",
        ),
        ("{{ message }}\n{% include 'x.html' %}", "body: line 2: {% include %} is not allowed"),
        ("{{ message }}\n\n{% set s = message ~ message %}", "line 3: {% set %} is not allowed"),
        (
            "{{ message }}{% for a in delivery.countries %}{% for b in delivery.countries %}"
            "{% endfor %}{% endfor %}",
            "loops inside loops are not allowed",
        ),
        ("{{ message }}{% for a in message * 600 %}x{% endfor %}", "may only go over a variable"),
        ("{{ message }}{{ message.upper() }}", "calling functions or methods is not allowed"),
        ("{{ message }}{{ '%999999999s' % 1 }}", "string formatting with % is not allowed"),
        ("{{ message }}{{ '%999999999s'|format(1) }}", "unknown filter 'format'"),
        ("{{ message }}{{ message|center(999999999) }}", "unknown filter 'center'"),
        ("{{ message }}{{ (((10 ** 100) ** 100) ** 100) ** 10 }}", "grows too large"),
        ("{{ message }}{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "syntax error"),
        ("{{ message }}{{ message|xmlattr }}", "unknown filter 'xmlattr'"),
        ("Dear {{ target.name }}", "the body must place the supporter's text"),
        ("{{ message }} {{ ''.__class__.__mro__ }}", "access to '__class__' is not allowed"),
        ("{{ message }} {{ target['__class__'] }}", "access to '__class__' is not allowed"),
        # Reaching for internals through a filter is caught by the sandbox when tried out.
        ("{{ message }} {{ target|attr('__class__') }}", "unknown filter 'attr'"),
        ("{{ message }} {{ 'x' * 100000000 }}", "too long"),
        ("{{ message }} {{ range(10) }}", "unknown variable 'range'"),
    ],
)
def test_a_broken_or_unsafe_template_is_refused_at_save_with_the_line(
    client: TestClient, admin: Account, campaign_slug: str, body: str, expected: str
) -> None:
    response = put(client, admin, campaign_slug, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "The template has errors"
    assert expected in problem["detail"]


def test_the_subject_is_checked_too(client: TestClient, admin: Account, campaign_slug: str) -> None:
    response = client.put(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/delivery/uk",
        json={"subject": "{{ supporter.name }}", "body": "{{ delivery.confirmed_count }}"},
        headers=admin.headers,
    )
    assert response.status_code == 422
    # Delivery letters have no supporter: the variable is unknown in that kind of template.
    assert "subject: line 1: unknown variable 'supporter'" in response.json()["detail"]


def test_an_unsaved_text_can_be_previewed_and_problems_are_reported(
    client: TestClient, admin: Account, campaign_slug: str
) -> None:
    targets = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/targets", headers=admin.headers
    ).json()["data"]
    url = f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates/delivery/ko/preview"
    ok = client.post(url, json={"target_id": targets[0]["id"]}, headers=admin.headers)
    assert ok.status_code == 200, ok.text  # the built-in Korean delivery letter
    assert "청원" in ok.json()["subject"]
    tried = client.post(
        url,
        json={"target_id": targets[0]["id"], "subject": "Hi", "body": "{{ delivery.rows }}"},
        headers=admin.headers,
    )
    assert tried.status_code == 422
    assert "unknown field 'delivery.rows'" in tried.json()["detail"]


def test_other_campaigns_organisers_cannot_see_or_change_templates(
    client: TestClient, make_account: Any, campaign_slug: str
) -> None:
    outsider = make_account("organiser", campaigns=[])
    response = put(client, outsider, campaign_slug, FRAME)
    assert response.status_code == 404
    listed = client.get(
        f"/api/v1/admin/campaigns/{campaign_slug}/letter-templates", headers=outsider.headers
    )
    assert listed.status_code == 404


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ target.__class__ }}",
        "{{ target|attr('__class__') }}",
        "{{ message.format.__globals__ }}",
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_renders_nothing_of_python_internals(source: str) -> None:
    # Even a template that skipped the checks cannot reach internals when it is rendered.
    with pytest.raises(engine.TemplateProblem):
        engine.render("s", source, {"target": {"name": "x"}, "message": "m"})
    with pytest.raises(engine.TemplateProblem):
        engine.check(TemplateKind.supporter, subject="s", body=source + "{{ message }}")


def test_dates_are_written_in_the_letters_language() -> None:
    from datetime import date

    day = date(2026, 11, 30)
    assert engine.format_date(day, "en") == "30 November 2026"
    assert engine.format_date(day, "ko") == "2026년 11월 30일"
    assert (
        engine.format_date(day, "uk") == "30 листопада 2026\u202fр."
    )  # (CLDR: a narrow no-break space)


@pytest.mark.parametrize("language", sorted(defaults.DELIVERY))
def test_the_built_in_delivery_letters_pass_the_check_they_are_saved_through(
    language: str,
) -> None:
    """The built-in letters use `plural`; the check refused it as an unknown filter, so an
    organiser could not save (nor preview as typed) the built-in text they start from."""
    subject, body = defaults.DELIVERY[language]
    assert (
        templates.template_problems(TemplateKind.delivery, language, subject=subject, body=body)
        == []
    )
