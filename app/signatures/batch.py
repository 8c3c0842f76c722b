"""Group commit for the signing API: concurrent signatures share one transaction.

In a surge most of a signature's cost is per transaction, not per row: a BEGIN, two INSERTs and
a COMMIT (with its WAL flush) on one connection, and the Python around each. So each server
process has one writer thread that takes every signature waiting at that moment and records
them together (sign_many), commits once, then answers each request. Under light load a batch is
one signature; under load batches grow while the previous commit is flushing, as PostgreSQL's
own group commit does, and a batch smaller than the previous one waits up to LINGER_SECONDS
(2 ms) for the signatures arriving at that moment, until it is as big as the previous one
(measured at 16 clients: 1,100 -> 1,900 signatures/s with a fixed 2 ms wait, ~2,600 -> ~3,400
when the wait ends as soon as the previous batch's signers are back; 4 ms was worse again).
A request is answered 202 only after
the commit that holds its signature: a failed commit answers every request of its batch with
an error (503 when the database is unreachable), so nothing answered as accepted is lost.

It is per-process state only in the sense of a queue of requests in flight: two servers each
have their own, and the database's unique constraint keeps one signature per person.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.abuse import service as abuse_service
from app.abuse.service import SigningSource
from app.core import metrics
from app.core.config import Settings
from app.core.errors import ProblemError
from app.core.i18n import negotiate
from app.petitions import service as petition_service
from app.petitions.models import Petition
from app.signatures import service as signature_service
from app.signatures.models import SignatureCreate

log = logging.getLogger(__name__)

MAX_BATCH = 200
FIRST_BATCH = 16
LINGER_SECONDS = 0.002


class _Unanswered:
    """A job's outcome before the writer has one."""


UNANSWERED = _Unanswered()


@dataclass(eq=False)
class SignJob:
    """A signature waiting for its batch, and who waits for it: a thread (`future`, from
    submit) or a request on an event loop (`waiter`, from sign)."""

    slug: str
    data: SignatureCreate
    accept_language: str | None
    source: SigningSource
    future: Future[None] | None = None
    waiter: asyncio.Future[None] | None = None
    outcome: BaseException | _Unanswered | None = UNANSWERED  # None: recorded

    @property
    def answered(self) -> bool:
        return self.outcome is not UNANSWERED

    def answer(self, error: BaseException | None = None) -> None:
        """The job's outcome (None: recorded), told to its waiter by _publish; the first
        one given stands."""
        if self.outcome is UNANSWERED:
            self.outcome = error


def _publish(jobs: list[SignJob]) -> None:
    """Tell each job's waiter its outcome. Requests on an event loop are told in one call per
    loop and batch: one wake-up of the loop for the whole batch (one each, through
    concurrent futures, cost the loop a third of its CPU per signature)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[SignJob]] = {}
    for job in jobs:
        if job.waiter is not None:
            by_loop.setdefault(job.waiter.get_loop(), []).append(job)
        elif job.future is not None and not job.future.done():
            _tell(job.future, job.outcome)
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiting)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass


def _settle(jobs: list[SignJob]) -> None:
    """On the jobs' event loop: their waiters' results (a request gone meanwhile, its waiter
    cancelled, is skipped: its signature stands)."""
    for job in jobs:
        assert job.waiter is not None
        if not job.waiter.done():
            _tell(job.waiter, job.outcome)


def _tell(future: Future[None] | asyncio.Future[None], outcome: object) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(None)


class SigningBatcher:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._queue: queue.SimpleQueue[SignJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(
        self,
        *,
        slug: str,
        data: SignatureCreate,
        accept_language: str | None,
        source: SigningSource,
    ) -> Future[None]:
        """Queue a signature from a thread; the future resolves once it is committed (or
        fails)."""
        job = SignJob(
            slug=slug, data=data, accept_language=accept_language, source=source, future=Future()
        )
        self._ensure_started()
        self._queue.put(job)
        assert job.future is not None
        return job.future

    async def sign(
        self,
        *,
        slug: str,
        data: SignatureCreate,
        accept_language: str | None,
        source: SigningSource,
    ) -> None:
        """Sign a petition, once the request has been parsed: the one path of the API route,
        its fast path (fastpath.py) and the sign form.

        Checks the CAPTCHA when the site has one (a call to the provider: in the thread pool),
        then queues the signature and returns once it is committed. The batch checks that the
        petition takes signatures (petition_service.ensure_accepting). Raises the problem to
        answer otherwise: 422 for a failed CAPTCHA, 404 for an unknown petition, a Refusal
        (409) for a closed or paused one, 503 when the database is unreachable.
        """
        if self.settings.CAPTCHA_PROVIDER:
            await run_in_threadpool(
                abuse_service.check_captcha, self.settings, token=data.captcha_token, ip=source.ip
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        job = SignJob(
            slug=slug, data=data, accept_language=accept_language, source=source, waiter=waiter
        )
        self._ensure_started()
        self._queue.put(job)
        await waiter

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="chorus-signing", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _run(self) -> None:
        expected = FIRST_BATCH  # how many signatures the next batch is likely to gather
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = self._gather(jobs)
            if not stop and len(jobs) < expected:
                # Others are probably signing at this very moment: a moment's wait lets them
                # share this commit (as PostgreSQL's commit_delay does), which costs far less
                # than one each.
                stop = self._linger(jobs, expected)
            # The signers the last commit answered are the ones likely to come next (a
            # page's visitors, a client's connections): the next batch waits for as many,
            # and no longer. One signer at a time waits for nobody.
            expected = len(jobs)
            metrics.SIGNING_BATCH.observe(len(jobs))
            try:
                self._record(jobs)
            except BaseException as exc:  # never leave a request waiting
                log.exception("signing batch failed")
                for job in jobs:
                    job.answer(exc)
            _publish(jobs)
            if stop:
                return

    def _linger(self, jobs: list[SignJob], expected: int) -> bool:
        """Wait up to LINGER_SECONDS for the batch to reach `expected` signatures, then take
        whatever else is waiting. True when a stop was asked for."""
        deadline = time.monotonic() + LINGER_SECONDS
        while len(jobs) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                return True
            jobs.append(job)
        return self._gather(jobs)

    def _gather(self, jobs: list[SignJob]) -> bool:
        """Add the jobs waiting now to `jobs`; True when a stop was asked for."""
        while len(jobs) < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            jobs.append(job)
        return False

    def _record(self, jobs: list[SignJob]) -> None:
        try:
            self._commit(jobs)
        except DBAPIError as exc:
            if exc.connection_invalidated or len(jobs) == 1:
                raise  # the database is unreachable: every request of the batch gets a 503
            # Something in one signature broke the batch: record each on its own, so the
            # others are not refused because of it.
            log.warning("signing batch of %d failed (%s); retrying one by one", len(jobs), exc)
            for job in jobs:
                if job.answered:  # already answered on its own (e.g. a closed petition)
                    continue
                try:
                    self._commit([job])
                except Exception as single:
                    job.answer(single)

    def _commit(self, jobs: list[SignJob]) -> None:
        ready: list[tuple[SignJob, signature_service.SignRequest]] = []
        # A batch's signers mostly sign one petition in a few languages: each petition is
        # looked up and checked, and each language chosen, once per batch.
        accepting: dict[str, tuple[Petition, list[str]]] = {}
        chosen: dict[tuple[str, str | None, str | None], str] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            for job in jobs:
                found = accepting.get(job.slug)
                if found is None:
                    try:
                        petition = petition_service.get_public(
                            session, slug=job.slug, cache_seconds=self.settings.CACHE_SECONDS
                        )
                        petition_service.ensure_accepting(petition)
                    except ProblemError as exc:  # unknown, closed or paused: this request only
                        job.answer(exc)
                        continue
                    found = accepting[job.slug] = (petition, petition.locales)
                petition, locales = found
                key = (job.slug, job.data.locale, job.accept_language)
                locale = chosen.get(key)
                if locale is None:
                    locale = chosen[key] = negotiate(
                        query=job.data.locale,
                        accept_language=job.accept_language,
                        available=locales,
                        default=petition.default_locale,
                    )
                request = signature_service.SignRequest(petition, job.data, locale, job.source)
                ready.append((job, request))
            if ready:
                signature_service.sign_many(
                    session, [request for _, request in ready], settings=self.settings
                )
            session.commit()
        for job, _ in ready:
            job.answer()
