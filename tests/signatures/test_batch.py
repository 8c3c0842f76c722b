"""Group commit: signatures that wait together are recorded in one transaction, each answered."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from app.abuse.service import SigningSource
from app.core.config import Settings
from app.email.models import OutboxMessage
from app.signatures import batch
from app.signatures.models import Signature, SignatureCreate
from tests.factories import make_petition, signer


def test_signatures_waiting_together_share_one_commit_and_each_is_answered(
    session: Session, engine: Engine, settings: Settings
) -> None:
    petition = make_petition(session)
    batcher = batch.SigningBatcher(engine, settings)
    batches: list[int] = []
    release = threading.Event()
    commit = batcher._commit

    def held_commit(jobs: list[batch.SignJob]) -> None:
        batches.append(len(jobs))
        if len(batches) == 1:  # the first commit holds on while the others arrive
            assert release.wait(10)
        commit(jobs)

    batcher._commit = held_commit  # type: ignore[method-assign]

    def sign() -> Future[None]:
        return batcher.submit(
            slug=petition.slug,
            data=SignatureCreate(**signer()),
            accept_language=None,
            source=SigningSource(ip="198.51.100.7"),
        )

    try:
        futures = [sign()]
        while not batches:  # the writer took the first signature and is committing it
            threading.Event().wait(0.001)
        futures += [sign() for _ in range(40)]
        release.set()
        for future in futures:
            assert future.result(timeout=10) is None
    finally:
        batcher.stop()

    assert batches == [1, 40]
    assert session.exec(select(func.count()).select_from(Signature)).one() == 41
    assert session.exec(select(func.count()).select_from(OutboxMessage)).one() == 41
