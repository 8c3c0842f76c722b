"""Who may reach the console's officials, updates, donations and admin pages: an organiser of
another campaign gets 404 for every page and form of this one, organisers get 403 for the
admins' pages, and a form sent without its CSRF token is refused with 403 and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from app.abuse.models import AbuseRule, RuleAction, RuleKind
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, TokenKind, User
from app.campaigns.models import Campaign
from app.email.models import OutboxMessage
from app.models import metadata
from app.petitions import service as petition_service
from app.petitions.models import Petition, PetitionStatus
from app.targets.models import Target, TargetGroup
from app.updates.models import PetitionUpdate
from app.webhooks.models import Scope, WebhookEndpoint
from tests.conftest import Account
from tests.console.helpers import signed_in
from tests.factories import make_petition
from tests.updates.test_updates import add_signers


@pytest.fixture
def petition(session: Session) -> Petition:
    petition = make_petition(session, status=PetitionStatus.open)
    add_signers(session, petition, 2)
    return petition


@pytest.fixture
def slug(session: Session, petition: Petition) -> str:
    return session.exec(select(Campaign.slug).where(Campaign.id == petition.campaign_id)).one()


@pytest.fixture
def official(session: Session, petition: Petition) -> Target:
    [target] = petition_service.targets(session, petition_id=petition.id or 0)
    return target


@pytest.fixture
def group(session: Session, petition: Petition) -> TargetGroup:
    group = TargetGroup(campaign_id=petition.campaign_id, key="ministries", names={"en": "M"})
    session.add(group)
    session.commit()
    return group


@pytest.fixture
def admin_rows(session: Session, admin: Account) -> tuple[int, int, int]:
    """An account, an API token and an abuse rule that admins' forms could change."""
    account = session.exec(select(User).where(User.email == admin.email)).one()
    token = session.exec(select(ApiToken).where(ApiToken.user_id == account.id)).one()
    rule = AbuseRule(kind=RuleKind.domain, value="spam.example", action=RuleAction.block)
    session.add(rule)
    session.commit()
    return account.id or 0, token.id or 0, rule.id or 0


def campaign_pages(slug: str, petition: Petition, official: Target) -> list[str]:
    return [
        f"/admin/campaigns/{slug}/officials",
        f"/admin/campaigns/{slug}/officials/new",
        f"/admin/officials/{official.id}/edit",
        f"/admin/officials/{official.id}/retire",
        f"/admin/campaigns/{slug}/groups/new",
        f"/admin/campaigns/{slug}/groups/ministries",
        f"/admin/petitions/{petition.slug}/officials",
        f"/admin/petitions/{petition.slug}/updates",
        f"/admin/campaigns/{slug}/donations",
    ]


def campaign_forms(
    slug: str, petition: Petition, official: Target
) -> list[tuple[str, dict[str, str]]]:
    update = {
        "translations.en.subject": "Forged",
        "translations.en.body": "Forged",
        "step": "send",
    }
    official_fields = {
        "key": "forged",
        "name": "Forged",
        "country": "GB",
        "language": "en",
        "delivery_channel": "email",
        "email": "forged@example.org",
    }
    return [
        (f"/admin/campaigns/{slug}/officials", official_fields),
        (f"/admin/officials/{official.id}/edit", {**official_fields, "key": official.key}),
        (f"/admin/officials/{official.id}/retire", {}),
        (f"/admin/campaigns/{slug}/groups", {"key": "forged", "names.en": "Forged"}),
        (f"/admin/campaigns/{slug}/groups/ministries", {"names.en": "Forged"}),
        (f"/admin/petitions/{petition.slug}/officials", {}),
        (f"/admin/petitions/{petition.slug}/updates/review", update),
        (f"/admin/petitions/{petition.slug}/updates", update),
    ]


ADMIN_PAGES = ["/admin/accounts", "/admin/accounts/new", "/admin/tokens", "/admin/abuse-rules"]
ADMIN_PAGES += ["/admin/audit"]


def admin_forms(account_id: int, token_id: int, rule_id: int) -> list[tuple[str, dict[str, str]]]:
    return [
        (
            "/admin/accounts",
            {"email": "forged@example.org", "password": "a long enough password", "role": "admin"},
        ),
        (f"/admin/accounts/{account_id}", {"role": "admin", "is_active": "1"}),
        ("/admin/tokens", {"name": "forged"}),
        (f"/admin/tokens/{token_id}/revoke", {}),
        ("/admin/abuse-rules", {"kind": "domain", "value": "forged.example", "action": "block"}),
        (f"/admin/abuse-rules/{rule_id}/remove", {}),
    ]


def state(session: Session) -> tuple[Any, ...]:
    """Everything these forms could change."""
    session.expire_all()

    def count(model: Any) -> int:
        return session.exec(select(func.count()).select_from(model)).one()

    return (
        [(t.key, t.name, t.retired_at, t.group_id) for t in session.exec(select(Target))],
        [(g.key, g.names) for g in session.exec(select(TargetGroup))],
        count(PetitionUpdate),
        count(OutboxMessage),
        [(u.email, u.role, u.is_active) for u in session.exec(select(User).order_by(col(User.id)))],
        [
            (t.name, t.revoked_at)
            for t in session.exec(select(ApiToken).where(ApiToken.kind == TokenKind.api))
        ],
        [(r.value, r.action) for r in session.exec(select(AbuseRule))],
        [a for a in session.exec(select(AuditEntry.action)) if a != "console.sign_in"],
    )


def test_an_organiser_of_another_campaign_gets_404_for_every_page_and_form(
    client: TestClient,
    session: Session,
    petition: Petition,
    slug: str,
    official: Target,
    group: TargetGroup,
    make_account: Any,
) -> None:
    theirs = make_petition(session, status=PetitionStatus.open)
    their_slug = session.exec(select(Campaign.slug).where(Campaign.id == theirs.campaign_id)).one()
    outsider = make_account("organiser", [their_slug])
    before = state(session)
    csrf = signed_in(client, outsider.email, outsider.password)
    for path in campaign_pages(slug, petition, official):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in response.text
        assert "Minister of Tests" not in response.text
        assert petition.text("en")["title"] not in response.text
    for path, data in campaign_forms(slug, petition, official):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, path
    assert state(session) == before
    # Their own campaign's pages answer.
    assert client.get(f"/admin/campaigns/{their_slug}/officials").status_code == 200


def test_organisers_get_403_for_the_admins_pages(
    client: TestClient,
    session: Session,
    slug: str,
    admin_rows: tuple[int, int, int],
    make_account: Any,
) -> None:
    organiser = make_account("organiser", [slug])
    before = state(session)
    csrf = signed_in(client, organiser.email, organiser.password)
    nav = client.get("/admin/").text
    for path in ADMIN_PAGES:
        assert f'href="{path}"' not in nav  # not offered
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in response.text
    for path, data in admin_forms(*admin_rows):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 403, path
    assert client.get(f"/admin/accounts/{admin_rows[0]}").status_code == 403
    assert state(session) == before


def test_every_new_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient,
    session: Session,
    petition: Petition,
    slug: str,
    official: Target,
    group: TargetGroup,
    admin: Account,
    admin_rows: tuple[int, int, int],
) -> None:
    before = state(session)
    signed_in(client, admin.email, admin.password)
    with TestClient(client.app) as attacker:
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    forms = [
        *campaign_forms(slug, petition, official),
        *admin_forms(*admin_rows),
    ]
    for path, data in forms:
        for csrf in (None, "", "0" * 64, attacker_csrf):
            sent = data if csrf is None else {**data, "csrf_token": csrf}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, csrf)
            assert "This form has expired" in response.text
    assert state(session) == before
    assert client.get("/admin/").status_code == 200  # still signed in


def test_signed_out_visitors_are_sent_to_sign_in_and_see_no_data(
    client: TestClient, petition: Petition, slug: str, official: Target, group: TargetGroup
) -> None:
    for path in [*campaign_pages(slug, petition, official), *ADMIN_PAGES]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    for path, data in campaign_forms(slug, petition, official):
        response = client.post(path, data=data, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login"


# --- every console route, found in the app's router -----------------------------------------------
# The tests above name the pages of their time; these walk the router, so a page added later is
# checked without anyone remembering to list it. A route with a path parameter this table cannot
# fill fails the tests until a value (one of campaign A's things) is added here.


def console_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path, endpoint name) of every route under /admin, from the app's own router
    (each included router's prefix added; FastAPI 0.165 keeps included routers nested)."""

    def walk(router: Any, prefix: str) -> Iterator[tuple[str, APIRoute]]:
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield prefix + route.path, route
            elif hasattr(route, "original_router"):
                yield from walk(route.original_router, prefix + route.include_context.prefix)

    found = [
        (method, path, route.endpoint.__name__)
        for path, route in walk(app.router, "")
        if path == "/admin" or path.startswith("/admin/")
        for method in sorted(route.methods or ())
    ]
    # The walk sees every console module's routes (if FastAPI nests routers differently one day,
    # this fails instead of the checks below passing on nothing).
    assert {"login", "dashboard", "petition_page", "officials_page", "export"} <= {
        name for _, _, name in found
    }
    assert len(found) >= 50, found
    return found


@dataclass
class World:
    """Campaign A's things (each named in some console address), and what of them must never
    reach anyone else."""

    values: dict[tuple[str, str], str]  # (the segment before the parameter, or "", name) -> value
    secrets: list[str]
    organiser: Account  # of campaign A
    petition: Petition
    official: Target
    admin_rows: tuple[int, int, int]  # an account (the organiser's), an API token, a rule


@pytest.fixture
def world(
    session: Session,
    petition: Petition,
    slug: str,
    official: Target,
    group: TargetGroup,
    admin_rows: tuple[int, int, int],
    make_account: Any,
    client: TestClient,
    admin: Account,
) -> World:
    campaign = session.exec(select(Campaign).where(Campaign.slug == slug)).one()
    campaign.translations = {"en": {"name": "Campaign A, not yours", "description": "Secret."}}
    session.add(campaign)
    session.commit()
    assert campaign.id is not None
    endpoint = WebhookEndpoint(
        campaign_id=campaign.id,
        url="https://crm.campaign-a.example.org/hooks/chorus",
        events=["signature.confirmed"],
        scope=Scope.counts,
        secret_sealed="not used here",
    )
    session.add(endpoint)
    session.commit()
    delivered = client.post(
        f"/api/v1/admin/petitions/{petition.slug}/deliveries", json={}, headers=admin.headers
    )
    assert delivered.status_code == 201, delivered.text
    delivery = delivered.json()
    [letter] = delivery["letters"]
    organiser = make_account("organiser", [slug])
    user_id = session.exec(select(User.id).where(User.email == organiser.email)).one() or 0
    _, token_id, rule_id = admin_rows
    values = {
        ("petitions", "slug"): petition.slug,
        ("campaigns", "slug"): slug,
        ("", "action"): "close",
        ("", "target_id"): str(official.id),
        ("groups", "key"): group.key,
        ("", "kind"): "delivery",
        ("", "language"): "en",
        ("", "user_id"): str(user_id),
        ("", "token_id"): str(token_id),
        ("", "rule_id"): str(rule_id),
        ("", "endpoint_id"): str(endpoint.id),
        ("delivery", "number"): str(delivery["number"]),
        ("letters", "letter_id"): str(letter["id"]),
        ("", "rest"): f"petitions/{petition.slug}/no-such-page",
    }
    secrets = [
        petition.text("en")["title"],
        "Campaign A, not yours",
        official.email or "",
        "bulk0@example.org",  # a signer (tests/updates add_signers)
        organiser.email,
        "crm.campaign-a.example.org",
    ]
    return World(values, secrets, organiser, petition, official, (user_id, token_id, rule_id))


def fill(path: str, world: World) -> str:
    """The route's address for campaign A's things."""

    def value(match: re.Match[str]) -> str:
        before, name = match["before"], match["name"]
        found = world.values.get((before, name), world.values.get(("", name)))
        if found is None:
            pytest.fail(f"{path}: add a value for {{{name}}} (one of campaign A's) to `world`")
        return f"{before}/{found}" if before else found

    return re.sub(r"(?:(?P<before>[\w-]+)/)?\{(?P<name>\w+)(?::\w+)?\}", value, path)


def sees_nothing(response: Any, world: World, what: str) -> None:
    for secret in world.secrets:
        assert secret not in response.text, (what, secret)


def gets(app: Any) -> list[tuple[str, str]]:
    return [(path, name) for method, path, name in console_routes(app) if method == "GET"]


def posts(app: Any) -> list[tuple[str, str]]:
    return [(path, name) for method, path, name in console_routes(app) if method == "POST"]


def test_an_organiser_of_another_campaign_gets_404_on_every_console_route(
    client: TestClient, session: Session, world: World, make_account: Any
) -> None:
    theirs = make_petition(session, status=PetitionStatus.open)
    their_slug = session.exec(select(Campaign.slug).where(Campaign.id == theirs.campaign_id)).one()
    outsider = make_account("organiser", [their_slug])
    outsider_csrf = signed_in(client, outsider.email, outsider.password)
    admins_only: set[str] = set()
    with TestClient(client.app) as member:
        signed_in(member, world.organiser.email, world.organiser.password)
        before = everything(session)
        for route, name in gets(client.app):
            path = fill(route, world)
            theirs_status = member.get(path, follow_redirects=False).status_code
            response = client.get(path, follow_redirects=False)
            sees_nothing(response, world, path)
            if theirs_status == 403:  # for admins only: the same answer for every organiser
                admins_only.add(path)
                assert response.status_code == 403, path
            elif "{" in route and name != "not_found":
                # The address names one of campaign A's things, and A's own organiser reaches it.
                assert theirs_status < 400, (path, theirs_status)
                assert response.status_code == 404, path
                assert "Page not found" in response.text, path
            else:  # the same page as anyone's (the dashboard, the sign-in page, 404), without A's
                assert response.status_code == theirs_status, path
    assert set(ADMIN_PAGES) <= admins_only
    for route, _ in posts(client.app):
        if "{" not in route:
            continue  # not about one of A's things (a new campaign, signing out…)
        path = fill(route, world)
        response = client.post(path, data={"csrf_token": outsider_csrf}, follow_redirects=False)
        # Under an admins' page (…/accounts/{id}, …/tokens/{id}/revoke): 403 as for the page.
        admins = any(path == page or path.startswith(page + "/") for page in admins_only)
        expected = 403 if admins else 404
        assert response.status_code == expected, path
        sees_nothing(response, world, path)
    # Campaign A's own organiser downloaded A's annex on the way (its audit entry, as for any
    # download of signatories); nothing else changed, and nothing for the outsider.
    after = everything(session)
    own = [
        row
        for row in after["audit_entry"]
        if "'delivery.annex_download'" in row and repr(world.organiser.email) in row
    ]
    assert len(own) == 1
    after["audit_entry"] = [row for row in after["audit_entry"] if row not in own]
    assert after == before


def test_a_signed_out_request_to_any_console_route_is_sent_to_sign_in_and_sees_nothing(
    client: TestClient, session: Session, world: World
) -> None:
    before = everything(session)
    for route, name in gets(client.app):
        path = fill(route, world)
        response = client.get(path)
        sees_nothing(response, world, path)
        for step in response.history:
            sees_nothing(step, world, path)
        assert response.status_code == 200, path
        assert response.url.path == "/admin/login", path
        assert response.history or name == "login_page", path
    for route, name in posts(client.app):
        if name == "login":
            continue  # signing in (tests/console/test_signin.py)
        path = fill(route, world)
        response = client.post(path, data=valid_forms(world).get(path, {}), follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login", path
        sees_nothing(response, world, path)
    assert everything(session) == before


class PostForms(HTMLParser):
    """The POST forms of a page, as a browser would send them untouched: {action: {name: value}}
    (inputs with their value, ticked boxes, chosen options, textareas, the first named button)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self.form: dict[str, str] | None = None
        self.select = self.textarea = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            post = a.get("method", "").lower() == "post"
            self.form = self.forms.setdefault(a.get("action", ""), {}) if post else None
        elif self.form is None or not (a.get("name") or tag == "option"):
            return
        elif tag == "input" and (a.get("type") not in ("checkbox", "radio") or "checked" in a):
            self.form.setdefault(a["name"], a.get("value", ""))
        elif tag == "button":
            self.form.setdefault(a["name"], a.get("value", ""))
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select:
            if "selected" in a or self.select not in self.form:
                self.form[self.select] = a.get("value", "")
        elif tag == "textarea":
            self.textarea = a["name"]
            self.form[self.textarea] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = ""
        elif tag == "textarea":
            self.textarea = ""

    def handle_data(self, data: str) -> None:
        if self.form is not None and self.textarea:
            self.form[self.textarea] += data


def valid_forms(world: World) -> dict[str, dict[str, str]]:
    """Forms that would change something if the route took them (for those whose page does not
    offer one ready to send, or offers one that changes nothing as it stands)."""
    petition = world.petition.slug
    campaign = world.values[("campaigns", "slug")]
    text = {f"translations.en.{k}": "Forged" for k in ("title", "summary", "body")}
    return {
        **dict(campaign_forms(campaign, world.petition, world.official)),
        **dict(admin_forms(*world.admin_rows)),
        f"/admin/petitions/{petition}/edit": {"goal": "999"},
        f"/admin/campaigns/{campaign}/petitions": {"slug": "forged", "goal": "10", **text},
        "/admin/campaigns": {"slug": "forged", "translations.en.name": "Forged"},
        f"/admin/petitions/{petition}/signatures/invalidate": {
            "kind": "domain",
            "source": "example.org",
            "minutes": "60",
        },
        "/admin/language": {"locale": "ko"},
    }


def test_every_console_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, session: Session, world: World, admin: Account
) -> None:
    """Signed in as an admin (who may do everything), every POST route is sent the form its page
    offers (or a valid one), without the session's CSRF token: 403, and nothing changes."""
    signed_in(client, admin.email, admin.password)
    offered: dict[str, dict[str, str]] = {}
    for route, _ in gets(client.app):
        page = PostForms()
        page.feed(client.get(fill(route, world)).text)
        for action, fields in page.forms.items():
            offered.setdefault(action, fields)
    valid = valid_forms(world)
    with TestClient(client.app) as attacker:
        attacker_csrf = signed_in(attacker, admin.email, admin.password)
    before = everything(session)
    for route, _ in posts(client.app):
        path = fill(route, world)
        form = {**offered.get(path, {}), **valid.get(path, {})}
        form.pop("csrf_token", None)
        if path == "/admin/login":
            form = {"email": admin.email, "password": admin.password}
        for csrf in (None, "", "0" * 64, attacker_csrf):
            sent = form if csrf is None else {**form, "csrf_token": csrf}
            response = client.post(path, data=sent, follow_redirects=False)
            assert response.status_code == 403, (path, csrf, response.text[:300])
            assert "This form has expired" in response.text, path
    assert everything(session) == before
    assert client.get("/admin/").status_code == 200  # still signed in
    # The forms sent were real ones: the pages offered most of them.
    assert len([r for r, _ in posts(client.app) if fill(r, world) in offered]) > 20


# Written by every request of a live session (kept alive for another idle period).
VOLATILE = {"api_token": {"expires_at", "last_used_at"}}


def everything(session: Session) -> dict[str, list[str]]:
    """Every row of every table (but the session's keep-alive), to compare before and after."""
    session.expire_all()
    out = {}
    for table in metadata.sorted_tables:
        columns = [c for c in table.columns if c.name not in VOLATILE.get(table.name, set())]
        rows = session.execute(sa_select(*columns)).all()
        out[table.name] = sorted(repr(tuple(row)) for row in rows)
    return out
