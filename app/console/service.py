"""What the console's pages show, gathered from the services that own the data.

Counts come from the tallies (a few rows per petition), never from the signature table, so the
dashboard and a petition page cost the same with a million signatures as with ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from app.auth.models import User
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.console.forms import number
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.core.i18n import country_names, translate
from app.email import outbox
from app.email.outbox import QueueState
from app.petitions import service as petition_service
from app.petitions.models import Petition, PetitionStatus
from app.signatures import service as signature_service
from app.stats import service as stats_service
from app.targets.models import Target, TargetGroup

CHART_DAYS = 14


@dataclass(frozen=True)
class Numbers:
    """A petition's figures: confirmed signatures, its goal, and the recent pace."""

    count: int
    goal: int
    this_hour: int  # since the start of the current hour (UTC)
    last_24_hours: int  # this hour and the 23 before it

    @property
    def progress(self) -> float:
        return min(1.0, self.count / self.goal) if self.goal else 0.0


@dataclass(frozen=True)
class PetitionLine:
    slug: str
    title: str
    status: PetitionStatus
    signing_paused: bool
    numbers: Numbers


@dataclass(frozen=True)
class CampaignLine:
    slug: str
    name: str
    petitions: list[PetitionLine]


@dataclass(frozen=True)
class Dashboard:
    campaigns: list[CampaignLine]
    queue: QueueState


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def campaign_name(campaign: Campaign, locale: str) -> str:
    text = campaign.translations.get(locale) or campaign.translations.get(
        campaign.default_locale, {}
    )
    return str(text.get("name") or campaign.slug)


def numbers_of(session: Session, *, petitions: list[Petition], now: datetime) -> dict[int, Numbers]:
    """The figures of several petitions, in three queries whatever their number."""
    ids = [p.id for p in petitions if p.id is not None]
    counts = signature_service.confirmed_counts(session, petition_ids=ids)
    hour = _hour(now)
    this_hour = stats_service.confirmed_since(session, petition_ids=ids, since=hour)
    day = stats_service.confirmed_since(session, petition_ids=ids, since=hour - timedelta(hours=23))
    return {
        p.id: Numbers(
            count=counts.get(p.id, 0),
            goal=p.goal,
            this_hour=this_hour.get(p.id, 0),
            last_24_hours=day.get(p.id, 0),
        )
        for p in petitions
        if p.id is not None
    }


def dashboard(
    session: Session, *, user: User, locale: str, now: datetime | None = None
) -> Dashboard:
    """The campaigns this person manages (all, for admins), each with its petitions and their
    figures, and the state of the mail queue."""
    now = now or utcnow()
    campaigns = campaign_service.list_managed(session, user=user)
    by_campaign: dict[int, list[Petition]] = {}
    for campaign in campaigns:
        assert campaign.id is not None
        by_campaign[campaign.id] = petition_service.list_for_campaign(
            session, campaign_id=campaign.id
        )
    figures = numbers_of(session, petitions=[p for ps in by_campaign.values() for p in ps], now=now)
    lines = [
        CampaignLine(
            slug=c.slug,
            name=campaign_name(c, locale),
            petitions=[
                PetitionLine(
                    slug=p.slug,
                    title=p.text(locale)["title"],
                    status=p.status,
                    signing_paused=p.signing_paused,
                    numbers=figures[p.id or 0],
                )
                for p in by_campaign[c.id or 0]
            ],
        )
        for c in campaigns
    ]
    return Dashboard(campaigns=lines, queue=outbox.queue_state(session, now=now))


# --- a petition -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


@dataclass(frozen=True)
class PetitionPage:
    petition: Petition
    campaign_slug: str
    campaign_name: str
    title: str
    numbers: Numbers
    by_country: list[tuple[str, str, int]]  # (code, name in the reader's language, count)
    by_day: list[DayCount]  # the last CHART_DAYS days (UTC), oldest first, empty days included
    targets: list[Target]
    actions: list[str]
    public_url: str


def petition_page(
    session: Session,
    *,
    petition: Petition,
    settings: Settings,
    locale: str,
    now: datetime | None = None,
) -> PetitionPage:
    now = now or utcnow()
    assert petition.id is not None
    campaign = campaign_service.get(session, campaign_id=petition.campaign_id)
    names = dict(country_names(locale))
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=CHART_DAYS - 1)
    days = {first + timedelta(days=i): 0 for i in range(CHART_DAYS)}
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    for hour in stats_service.confirmed_by_hour(session, petition_id=petition.id, since=since):
        day = hour.hour.astimezone(UTC).date()
        if day in days:
            days[day] += hour.count
    return PetitionPage(
        petition=petition,
        campaign_slug=campaign.slug,
        campaign_name=campaign_name(campaign, locale),
        title=petition.text(locale)["title"],
        numbers=numbers_of(session, petitions=[petition], now=now)[petition.id],
        by_country=[
            (c.country, names.get(c.country, c.country), c.count)
            for c in signature_service.confirmed_by_country(session, petition_id=petition.id)
        ],
        by_day=[DayCount(day=d, count=n) for d, n in days.items()],
        targets=petition_service.targets(session, petition_id=petition.id),
        actions=actions(petition),
        public_url=petition_service.page_url(settings, petition),
    )


# --- the lifecycle buttons ------------------------------------------------------------------------

# Each button and what it asks of the services: a status change (the petitions service decides
# which are allowed) or the signing switch.
LIFECYCLE: dict[str, tuple[str, Any]] = {
    "open": ("status", PetitionStatus.open),
    "pause": ("signing", True),
    "resume": ("signing", False),
    "close": ("status", PetitionStatus.closed),
    "reopen": ("status", PetitionStatus.open),
    "archive": ("status", PetitionStatus.archived),
}


def actions(petition: Petition) -> list[str]:
    """The buttons a petition offers now, in lifecycle order."""
    allowed = petition_service.ALLOWED_TRANSITIONS[petition.status]
    closed = petition.status == PetitionStatus.closed
    out = []
    for name, (kind, value) in LIFECYCLE.items():
        if kind == "signing":
            # Pausing is for an open petition; resuming for a paused one.
            if petition.status == PetitionStatus.open and petition.signing_paused != value:
                out.append(name)
        elif value in allowed and (value != PetitionStatus.open or (name == "reopen") == closed):
            out.append(name)
    return out


def act(session: Session, *, actor: User, petition: Petition, action: str) -> Petition:
    """Press a lifecycle button: the same service calls as the admin API's, audited there.

    An action the petition does not offer any more (another organiser was quicker) is a 409.
    """
    if action not in actions(petition):
        raise ProblemError(
            409,
            "action-unavailable",
            "This petition cannot do that now",
            f"A {petition.status} petition offers: {', '.join(actions(petition)) or 'nothing'}.",
        )
    kind, value = LIFECYCLE[action]
    if kind == "signing":
        return petition_service.set_signing_paused(
            session, actor=actor, petition=petition, paused=value
        )
    return petition_service.change_status(session, actor=actor, petition=petition, status=value)


# --- officials ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialSection:
    """The officials of one group (or of none: `key` None), each with its text in the reader's
    language."""

    key: str | None
    name: str
    officials: list[tuple[Target, dict[str, str]]]


def group_name(group: TargetGroup, locale: str) -> str:
    return str(group.names.get(locale) or next(iter(group.names.values()), "") or group.key)


def official_sections(
    groups: list[TargetGroup], targets: list[Target], locale: str
) -> list[OfficialSection]:
    """The campaign's officials by group, in the groups' order, those in none last; a group
    without officials is listed too (empty)."""
    by_group: dict[int | None, list[tuple[Target, dict[str, str]]]] = {g.id: [] for g in groups}
    for target in targets:
        by_group.setdefault(target.group_id, []).append((target, target.text(locale)))
    sections = [OfficialSection(g.key, group_name(g, locale), by_group[g.id]) for g in groups]
    if by_group.get(None):
        sections.append(OfficialSection(None, "", by_group[None]))
    return sections


def chosen_in_order(fields: dict[str, str], locale: str) -> tuple[list[int], dict[str, str]]:
    """The officials ticked on a petition's form (`target.<id>`), ordered by their numbers
    (`order.<id>`; those without one after, in the form's order), or the fields' errors."""
    errors: dict[str, str] = {}
    ranked: list[tuple[float, int, int]] = []
    for position, name in enumerate(fields):
        if not name.startswith("target.") or not fields[name]:
            continue
        raw_id = name.removeprefix("target.")
        if not raw_id.isdigit() or len(raw_id) > 9:
            errors["target_ids"] = translate(locale, "console.errors.target_unknown")
            continue
        order_text = fields.get(f"order.{raw_id}", "").strip()
        order = number(order_text, locale) if order_text else None
        if order_text and not isinstance(order, int):
            errors[f"order.{raw_id}"] = translate(locale, "console.errors.order_invalid")
            continue
        ranked.append((order if order is not None else float("inf"), position, int(raw_id)))
    return [target_id for _, _, target_id in sorted(ranked)], errors
