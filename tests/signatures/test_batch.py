"""Group commit: signatures that wait together are recorded in one transaction, each answered."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from app.abuse.service import SigningSource
from app.core.config import Settings
from app.core.errors import ProblemError
from app.email.models import OutboxMessage
from app.petitions.models import PetitionStatus
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
