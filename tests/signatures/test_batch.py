"""Group commit: signatures that wait together are recorded in one transaction, each answered."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from app.abuse.service import SigningSource
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ProblemError
from app.core.i18n import translate
from app.email.models import OutboxMessage
from app.main import create_app
from app.petitions.models import Petition, PetitionStatus
from app.signatures import batch
from app.signatures import service as signature_service
from app.signatures.models import Signature, SignatureCreate
from tests.factories import make_petition, signer


@dataclass
class HeldCommit:
    """The writer's first commit waits for `release`, so the next signatures queue meanwhile."""

    batches: list[int] = field(default_factory=list)  # the size of each batch committed
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def hold_first_commit(batcher: batch.SigningBatcher) -> HeldCommit:
    held = HeldCommit()
    commit = batcher._commit

    def held_commit(jobs: list[batch.SignJob]) -> None:
        held.batches.append(len(jobs))
        if len(held.batches) == 1:
            held.started.set()
            assert held.release.wait(10)
        commit(jobs)

    batcher._commit = held_commit  # type: ignore[method-assign]
    return held


def sign(batcher: batch.SigningBatcher, slug: str) -> Future[None]:
    return batcher.submit(
        slug=slug,
        data=SignatureCreate(**signer()),
        accept_language=None,
        source=SigningSource(ip="198.51.100.7"),
    )


def test_signatures_waiting_together_share_one_commit_and_each_is_answered(
    session: Session, engine: Engine, settings: Settings
) -> None:
    petition = make_petition(session)
    batcher = batch.SigningBatcher(engine, settings)
    held = hold_first_commit(batcher)
    try:
        futures = [sign(batcher, petition.slug)]
        held.started.wait(10)  # the writer took the first signature and is committing it
        futures += [sign(batcher, petition.slug) for _ in range(40)]
        held.release.set()
        for future in futures:
            assert future.result(timeout=10) is None
    finally:
        batcher.stop()

    assert held.batches == [1, 40]
    assert session.exec(select(func.count()).select_from(Signature)).one() == 41
    assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 41


def test_a_request_gone_before_its_commit_leaves_the_others_answered_and_its_signature_stands(
    session: Session, engine: Engine, settings: Settings
) -> None:
    """Requests on an event loop are answered once per batch (batch._publish); one whose
    client went away meanwhile (its waiter cancelled) is skipped, and the rest of its batch
    still hear that they were recorded."""
    petition = make_petition(session)
    batcher = batch.SigningBatcher(engine, settings)
    held = hold_first_commit(batcher)

    def request() -> Any:
        return batcher.sign(
            slug=petition.slug,
            data=SignatureCreate(**signer()),
            accept_language=None,
            source=SigningSource(ip="198.51.100.8"),
        )

    async def surge() -> list[Any]:
        first = asyncio.create_task(request())
        assert await asyncio.to_thread(held.started.wait, 10)  # being committed, held
        waiting = [asyncio.create_task(request()) for _ in range(5)]
        await asyncio.sleep(0.05)  # all five queued for the next batch
        waiting[2].cancel()  # its client went away
        held.release.set()
        return await asyncio.gather(first, *waiting, return_exceptions=True)

    try:
        answers = asyncio.run(surge())
    finally:
        batcher.stop()
    assert isinstance(answers[3], asyncio.CancelledError)
    assert [a for n, a in enumerate(answers) if n != 3] == [None] * 5
    assert held.batches == [1, 5]
    stored = session.exec(select(func.count()).select_from(Signature)).one()
    assert stored == 6  # the one whose client left too


def test_a_batch_that_fails_is_retried_one_by_one_and_a_refused_request_keeps_its_answer(
    session: Session, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_petition = make_petition(session)
    closed = make_petition(session, status=PetitionStatus.closed)
    sign_many = signature_service.sign_many

    def breaks_in_a_batch(session: Session, requests: list[Any], **kwargs: Any) -> None:
        if len(requests) > 1:  # something in one signature breaks a shared statement
            raise DBAPIError("INSERT ...", {}, Exception("value too long"))
        sign_many(session, requests, **kwargs)

    monkeypatch.setattr(signature_service, "sign_many", breaks_in_a_batch)
    batcher = batch.SigningBatcher(engine, settings)
    held = hold_first_commit(batcher)
    try:
        futures = [sign(batcher, open_petition.slug)]
        held.started.wait(10)
        refused = sign(batcher, closed.slug)
        futures += [sign(batcher, open_petition.slug) for _ in range(2)]
        held.release.set()
        for future in futures:
            assert future.result(timeout=10) is None
        with pytest.raises(ProblemError) as error:
            refused.result(timeout=10)
    finally:
        batcher.stop()

    assert error.value.status == 409
    assert held.batches == [1, 3, 1, 1]
    assert session.exec(select(func.count()).select_from(Signature)).one() == 3


def test_the_sign_form_shares_the_apis_commits_and_waits_for_its_own(
    session: Session, settings: Settings
) -> None:
    # The HTML form signs through the same batcher as the API (issue #12: it committed on its
    # own, beside the batches), so in a surge its signers share commits with the API's.
    petition = make_petition(session)
    app = create_app(settings)
    held = hold_first_commit(app.state.signing)
    form = {"name": "Kim", "email": "kim@example.org", "country": "KR", "locale": "en"}
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        api = f"/api/v1/petitions/{petition.slug}/signatures"
        first = pool.submit(client.post, api, json=signer())
        assert held.started.wait(10)  # the writer is committing the first signature
        signed = pool.submit(
            client.post, f"/petitions/{petition.slug}/sign", data=form, follow_redirects=False
        )
        second = pool.submit(client.post, api, json=signer())
        deadline = time.monotonic() + 10
        while app.state.signing._queue.qsize() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not signed.done()  # no answer before its commit
        held.release.set()
        assert signed.result(timeout=10).status_code == 303
        assert first.result(timeout=10).status_code == second.result(timeout=10).status_code == 202

    assert held.batches == [1, 2]
    assert session.exec(select(func.count()).select_from(Signature)).one() == 3


@pytest.mark.parametrize(
    ("change", "reason", "problem"),
    [
        ({"signing_paused": True}, "paused", "petition-paused"),
        ({"opens_at": utcnow() + timedelta(days=1)}, "not_open_yet", "petition-not-open"),
    ],
)
def test_the_form_and_the_api_refuse_a_petition_by_the_same_check(
    client: TestClient,
    session: Session,
    change: dict[str, Any],
    reason: str,
    problem: str,
) -> None:
    petition = make_petition(session)
    api = client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    assert api.status_code == 202
    session.execute(update(Petition).where(col(Petition.id) == petition.id).values(**change))
    session.commit()

    api = client.post(f"/api/v1/petitions/{petition.slug}/signatures", json=signer())
    form = client.post(
        f"/petitions/{petition.slug}/sign",
        data={"name": "Kim", "email": "kim@example.org", "country": "KR", "locale": "en"},
    )
    assert (api.status_code, api.json()["type"].rpartition("/")[2]) == (409, problem)
    assert form.status_code == 422
    assert translate("en", f"petition.refusal.{reason}") in form.text
    assert session.exec(select(func.count()).select_from(Signature)).one() == 1
