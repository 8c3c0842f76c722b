"""The letters of a petition's delivery in the console: the delivery log, each delivery's annex
and manifest (the bytes the admin API downloads), printable PDFs, "mark as posted", and
releasing or discarding a supporter's letter held for review. The letters' services do it all,
as for the API's routes, and write the audit log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from app.console.delivery import delivery_page, official_names, path
from app.console.rendering import ConsoleRoute, render, run_form
from app.console.session import Console, ConsoleDep, ConsoleFormDep
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import ProblemError
from app.core.i18n import translate
from app.letters import delivery_log, pdf, review
from app.letters import petition_delivery as delivery_service
from app.letters.models import DeliveryLogEntry, DeliveryState, LetterDelivery
from app.petitions import service as petition_service
from app.petitions.models import DB_INT_MAX, Petition
from app.targets import service as target_service

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

NumberPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
LetterIdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
STATES = {s.value for s in DeliveryState}
PAGE = 100  # letters of the log per page


# --- the delivery log -----------------------------------------------------------------------------


@router.get("/petitions/{slug}/delivery/log")
def log_page(
    slug: str,
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    state: str = "",
    official: str = "",
    after: str = "",
) -> Response:
    """Every letter to the petition's officials, oldest first, as the API's log: its state,
    the reason (why it failed, is retried or held), the attempts; by state and official."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    assert petition.id is not None
    _, targets = target_service.list_for_campaign(session, campaign_id=petition.campaign_id)
    errors: dict[str, str] = {}
    if state and state not in STATES:
        errors["state"] = translate(console.locale, "console.errors.enum")
    target = next((t for t in targets if str(t.id) == official), None)
    if official and target is None:
        errors["official"] = translate(console.locale, "console.errors.official_unknown")
    start = int(after) if after.isascii() and after.isdigit() and len(after) < 10 else 0
    entries: list[DeliveryLogEntry] = []
    next_after: int | None = None
    if not errors:
        entries, next_after = delivery_log.log(
            session,
            petition_id=petition.id,
            state=DeliveryState(state) if state else None,
            target_id=target.id if target else None,
            after=start,
            limit=PAGE,
        )
    query = {"state": state, "official": official, "after": next_after}

    def say(key: str) -> str:
        return translate(console.locale, key)

    return render(
        request,
        console,
        "delivery_log.html",
        {
            "petition": petition,
            "title": petition.text(console.locale)["title"],
            "values": {"state": state, "official": official},
            "errors": errors,
            "state_options": [("", say("console.delivery.any"))]
            + [(s.value, say(f"console.delivery.state.{s.value}")) for s in DeliveryState],
            "official_options": [("", say("console.delivery.any"))]
            + [(str(t.id), t.text(console.locale)["name"]) for t in targets],
            "entries": entries,
            "names": official_names(session, petition, console.locale),
            "first": start == 0,
            "next_url": path(petition, "/log?" + urlencode(query)) if next_after else "",
            "nav": "dashboard",
        },
        status_code=422 if errors else 200,
    )


# --- a delivery's annex and manifest --------------------------------------------------------------


@router.get("/petitions/{slug}/delivery/{number}/annex.csv")
def annex(slug: str, number: NumberPath, console: ConsoleDep, session: SessionDep) -> Response:
    """The annex exactly as sent (the API's `…/deliveries/{number}/annex.csv`): its SHA-256 is
    the manifest's. 410 once the retention period removed it."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    made = delivery_service.get_delivery(session, petition=petition, number=number)
    filename = delivery_service.annex_filename(petition, number)
    content = delivery_service.download_annex(
        session, actor=console.user, petition=petition, delivery=made, via="console"
    )
    return _download(content, delivery_service.ANNEX_TYPE, filename)


@router.get("/petitions/{slug}/delivery/{number}/manifest.json")
def manifest(
    slug: str, number: NumberPath, console: ConsoleDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The manifest (the API's `…/deliveries/{number}/manifest.json`), as a file to keep."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    made = delivery_service.get_delivery(session, petition=petition, number=number)
    content = delivery_service.manifest(made, petition, settings)
    return _download(content, "application/json", f"{petition.slug}-manifest-{number}.json")


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",  # (the signatories' names: never kept by a cache)
        },
    )


# --- one letter: print it, mark it posted, release or discard it ----------------------------------


def _letter(
    session: SessionDep, console: Console, slug: str, letter_id: int
) -> tuple[Petition, LetterDelivery]:
    """A letter of this petition's log, if this person manages the petition; 404 otherwise."""
    petition = petition_service.managed(session, user=console.user, slug=slug)
    letter = review.managed_delivery(session, user=console.user, delivery_id=letter_id)
    if letter.petition_id != petition.id:
        raise ProblemError(404, "letter-not-found", "Letter not found")
    return petition, letter


@router.get("/petitions/{slug}/delivery/letters/{letter_id}/letter.pdf")
def letter_pdf(
    slug: str,
    letter_id: LetterIdPath,
    console: ConsoleDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The letter as a printable A4 PDF (the API's `…/letters/{id}/letter.pdf`)."""
    _, letter = _letter(session, console, slug, letter_id)
    document = pdf.printable(session, delivery=letter, settings=settings)
    return Response(
        document,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="letter-{letter_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


DONE = {"posted": "posted", "release": "released", "discard": "discarded"}


@router.post("/petitions/{slug}/delivery/letters/{letter_id}/{action}")
def letter_action(
    slug: str,
    letter_id: LetterIdPath,
    action: str,
    request: Request,
    console: ConsoleFormDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """`posted` (a printed letter was posted: it is sent), `release` or `discard` (a letter
    held for review), through the review service as the API's routes (audited there)."""
    if action not in DONE:
        raise ProblemError(404, "not-found", "Not found")
    petition, letter = _letter(session, console, slug, letter_id)

    def act() -> LetterDelivery:
        if action == "posted":
            return review.mark_posted(session, actor=console.user, delivery=letter)
        if action == "release":
            return review.release(session, actor=console.user, delivery=letter, settings=settings)
        return review.discard(session, actor=console.user, delivery=letter)

    done, errors = run_form(session, console.locale, act)
    if done is None:
        return delivery_page(request, console, session, petition, errors=errors, status_code=409)
    return RedirectResponse(
        path(petition, "?" + urlencode({"done": DONE[action]})), status_code=303
    )
