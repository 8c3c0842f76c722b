"""Exporting a petition's signatures as CSV, NDJSON or JSON, streamed in constant memory.

An export never holds one transaction (or the request's session) open while it streams: rows
are read in keyset pages (`id > last ORDER BY id LIMIT BATCH_SIZE`), each page in its own short
connection, and turned into text a few hundred rows at a time. Pages are read at different
moments, so a signature confirmed while a long export runs may appear in either state; each row
is exported at most once.

On PostgreSQL, CSV pages are written by the database itself (COPY ... TO STDOUT) from SQL that
computes the same cells as csv_cells: no Python object per row, so a million rows take seconds.

Each export leaves an audit entry written before the first byte ("completed": false) and
completed with its row count once the last byte has been handed over.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Boolean, Engine, Integer, Row, Select, String, case, func, literal, null
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.audit.models import AuditEntry
from app.auth.models import User
from app.campaigns.models import SLUG_PATTERN
from app.core.addresses import COUNTRY_CODES
from app.core.db import UTCDateTime, utcnow
from app.core.errors import field_problem
from app.core.spreadsheet import FORMULA_PREFIXES, UTF8_BOM, iso_utc, neutralise
from app.petitions.models import Petition
from app.signatures import rows as signature_rows
from app.signatures.models import Signature, SignatureStatus

log = logging.getLogger(__name__)

_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")

AUDIT_ACTION = "signatures.export"
# Rows read per query (and per short connection).
BATCH_SIZE = 2000
# Rows turned into one chunk of output: small enough that a chunk stays well under a megabyte.
CHUNK_ROWS = 500

COLUMNS = tuple(column.name for column in signature_rows.EXPORT)


class ExportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"
    json = "json"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self]


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.ndjson: "application/x-ndjson",
    ExportFormat.json: "application/json",
}


@dataclass(frozen=True)
class ExportFilters:
    """Which signatures an export contains; every filter unset means all of them."""

    status: SignatureStatus | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    countries: tuple[str, ...] = ()
    consent_updates: bool | None = None

    def as_details(self) -> dict[str, Any]:
        """The filters that are set, as JSON for the audit log."""
        details: dict[str, Any] = {}
        if self.status is not None:
            details["status"] = self.status.value
        if self.created_from is not None:
            details["created_from"] = iso_utc(self.created_from)
        if self.created_to is not None:
            details["created_to"] = iso_utc(self.created_to)
        if self.countries:
            details["country"] = list(self.countries)
        if self.consent_updates is not None:
            details["consent_updates"] = self.consent_updates
        return details


# --- reading and checking filters ------------------------------------------------------------


# "2026-11-23T10:00:00+02:00" sent unencoded in a query string arrives with a space for the "+".
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.,]+) (\d\d(?::?\d\d)?)$")


def parse_datetime(*, value: str, field: str) -> datetime:
    """An ISO 8601 date or date and time, as UTC; UTC is assumed when no offset is given.

    Raises a 422 problem naming `field` for anything else.
    """
    text = _SPACED_OFFSET.sub(r"\1+\2", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise field_problem(
            field,
            "datetime_invalid",
            "Give an ISO 8601 date or date and time, e.g. 2026-11-23 or "
            "2026-11-23T09:30:00+09:00 (UTC when no offset is given)",
        ) from None


def parse_countries(*, values: Iterable[str]) -> tuple[str, ...]:
    """ISO 3166-1 alpha-2 codes from repeated values and/or comma lists, upper-cased, unique."""
    codes: list[str] = []
    for value in values:
        for part in value.split(","):
            code = part.strip().upper()
            if not code:
                continue
            if code not in COUNTRY_CODES:
                raise field_problem(
                    "country",
                    "country_invalid",
                    f"{part.strip()[:20]!r} is not an ISO 3166-1 alpha-2 country code",
                )
            if code not in codes:
                codes.append(code)
    return tuple(codes)


def make_filters(
    *,
    status: SignatureStatus | None = None,
    created_from: str | None = None,
    created_to: str | None = None,
    countries: Iterable[str] = (),
    consent_updates: bool | None = None,
) -> ExportFilters:
    """Check raw filter values (from a query string or the command line); 422 when invalid."""
    start = parse_datetime(value=created_from, field="created_from") if created_from else None
    end = parse_datetime(value=created_to, field="created_to") if created_to else None
    if start is not None and end is not None and end < start:
        raise field_problem("created_to", "range_invalid", "created_to is before created_from")
    return ExportFilters(
        status=status,
        created_from=start,
        created_to=end,
        countries=parse_countries(values=countries),
        consent_updates=consent_updates,
    )


# --- the petition and the audit entry --------------------------------------------------------


def find_petition(session: Session, *, slug: str) -> Petition | None:
    """The petition with this slug, whatever its status (for the command line)."""
    if not SLUG_PATTERN.fullmatch(slug):
        return None
    return session.exec(select(Petition).where(Petition.slug == slug)).first()


def filename(*, slug: str, export_format: ExportFormat, day: date | None = None) -> str:
    """E.g. `no-forced-return-signatures-2026-11-23.csv` (today, UTC, by default)."""
    day = day or utcnow().date()
    return f"{slug}-signatures-{day.isoformat()}.{export_format.value}"


def start_export(
    session: Session,
    *,
    petition: Petition,
    actor: User | None,
    actor_email: str | None = None,
    export_format: ExportFormat,
    filters: ExportFilters,
    bom: bool,
) -> AuditEntry:
    """Record the export in the caller's transaction, as not completed yet.

    `actor_email` names an actor without an account (e.g. "cli:alice") when `actor` is None.
    """
    entry = audit_service.record(
        session,
        actor=actor,
        action=AUDIT_ACTION,
        subject=f"petition:{petition.slug}",
        campaign_id=petition.campaign_id,
        details={
            "format": export_format.value,
            "filters": filters.as_details(),
            "bom": bom,
            "completed": False,
        },
    )
    if actor is None and actor_email is not None:
        entry.actor_email = actor_email
        session.flush()
    return entry


def download_headers(*, slug: str, export_format: ExportFormat) -> dict[str, str]:
    """The headers of an export sent as a download (a file named as `filename`, never cached)."""
    name = filename(slug=slug, export_format=export_format)
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def begin_export(
    session: Session,
    engine: Engine,
    *,
    petition: Petition,
    actor: User,
    export_format: ExportFormat,
    filters: ExportFilters,
    bom: bool,
) -> Iterator[bytes]:
    """An export asked for by a signed-in person (the admin API's and the console's): audited in
    the caller's transaction, which must commit before the body is read (it reads in short
    connections of its own). The BOM applies to CSV only."""
    bom = bom and export_format is ExportFormat.csv
    entry = start_export(
        session,
        petition=petition,
        actor=actor,
        export_format=export_format,
        filters=filters,
        bom=bom,
    )
    assert petition.id is not None and entry.id is not None
    return stream_export(
        engine,
        petition_id=petition.id,
        entry_id=entry.id,
        export_format=export_format,
        filters=filters,
        bom=bom,
    )


def finish_export(engine: Engine, *, entry_id: int, row_count: int) -> None:
    """Mark the export's audit entry completed, in a short transaction of its own."""
    with Session(engine) as session:
        entry = session.get(AuditEntry, entry_id)
        if entry is None:  # the entry was removed meanwhile; nothing to complete
            return
        entry.details = {**entry.details, "row_count": row_count, "completed": True}
        session.commit()


# --- queries ---------------------------------------------------------------------------------


def _query(*, petition_id: int, filters: ExportFilters) -> Select[*tuple[Any, ...]]:
    return _filtered(signature_rows.select(signature_rows.EXPORT, petition_id=petition_id), filters)


def _filtered(query: _Query, filters: ExportFilters) -> _Query:
    if filters.status is not None:
        query = query.where(col(Signature.status) == filters.status.value)
    if filters.created_from is not None:
        query = query.where(col(Signature.created_at) >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(col(Signature.created_at) < filters.created_to)
    if filters.countries:
        query = query.where(col(Signature.country).in_(filters.countries))
    if filters.consent_updates is not None:
        query = query.where(col(Signature.consent_updates) == filters.consent_updates)
    return query


def _count_query(*, petition_id: int, filters: ExportFilters) -> Select[int]:
    query = sa_select(func.count()).select_from(Signature)
    return _filtered(query.where(col(Signature.petition_id) == petition_id), filters)


def count_rows(engine: Engine, *, petition_id: int, filters: ExportFilters) -> int:
    """How many signatures an export with these filters contains (now)."""
    with engine.connect() as conn:
        return int(
            conn.execute(_count_query(petition_id=petition_id, filters=filters)).scalar_one()
        )


def count_in(session: Session, *, petition_id: int, filters: ExportFilters) -> int:
    """`count_rows` read in the caller's session (a page that shows the count before a download)."""
    query = _count_query(petition_id=petition_id, filters=filters)
    return int(session.execute(query).scalar_one())


# --- formatting ------------------------------------------------------------------------------


# How each kind of column is exported, chosen once per column of signature_rows.EXPORT by its
# type in the table: its JSON value, its CSV cell, and the same cell computed by PostgreSQL for
# COPY (_copy_select). Personal data is blank once anonymised (signature_rows): "" or null in
# JSON as the column has it, an empty cell in CSV (NULL for COPY, which writes "" as `""`).
_RISKY = "".join(re.escape(c) if c != "\t" and c != "\r" else c for c in FORMULA_PREFIXES)
_RISKY = _RISKY.replace("\t", "\\t").replace("\r", "\\r")


@dataclass(frozen=True)
class _Kind:
    json: Callable[[Any], Any]
    csv: Callable[[Any], str]
    sql: Callable[[Any], Any]  # the CSV cell, from the column (NULL is written empty)


_KINDS = {
    Boolean: _Kind(
        json=bool,
        csv=lambda value: "true" if value else "false",
        sql=lambda column: case((column, literal("true")), else_=literal("false")),
    ),
    String: _Kind(
        json=lambda value: value,
        csv=lambda value: "" if value is None else neutralise(value),
        sql=lambda column: case(
            (column.op("~")(f"^ *[{_RISKY}]"), literal("'") + column), else_=column
        ),
    ),
    UTCDateTime: _Kind(
        json=lambda value: None if value is None else iso_utc(value),
        csv=lambda value: "" if value is None else iso_utc(value),
        sql=lambda column: func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    ),
    Integer: _Kind(json=lambda value: value, csv=str, sql=lambda column: column),
}


def _kind(column: signature_rows.Column) -> _Kind:
    return next(kind for type_, kind in _KINDS.items() if isinstance(column.sql.type, type_))


_READ = signature_rows.reader(signature_rows.EXPORT)
_JSON = [(column.name, _kind(column).json) for column in signature_rows.EXPORT]
_CSV = [_kind(column).csv for column in signature_rows.EXPORT]


def record_of(row: Row[*tuple[Any, ...]] | tuple[Any, ...]) -> dict[str, Any]:
    """One signature as exported, with JSON types (personal data blank once anonymised)."""
    values = _READ(row)
    return {name: value_of(value) for (name, value_of), value in zip(_JSON, values, strict=True)}


def csv_cells(row: Row[*tuple[Any, ...]] | tuple[Any, ...]) -> list[str]:
    """One signature as CSV cells: text neutralised, booleans true/false, missing empty."""
    return [cell(value) for cell, value in zip(_CSV, _READ(row), strict=True)]


def _csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: CRLF line ends, quotes doubled
    writer.writerows(rows)
    return buffer.getvalue()


def _json_text(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def render(
    export_format: ExportFormat, rows: Sequence[Row[*tuple[Any, ...]]], *, first: bool
) -> bytes:
    """Some rows in the format, UTF-8. `first`: these rows start the export (for JSON commas)."""
    if export_format is ExportFormat.csv:
        text = _csv_text(csv_cells(row) for row in rows)
    elif export_format is ExportFormat.ndjson:
        text = "".join(_json_text(record_of(row)) + "\n" for row in rows)
    else:  # inside a JSON array: "[" comes before the first rows, "\n]\n" after the last
        text = ("\n" if first else ",\n") + ",\n".join(_json_text(record_of(r)) for r in rows)
    return text.encode()


# --- streaming -------------------------------------------------------------------------------


def iter_pages(
    engine: Engine,
    *,
    petition_id: int,
    filters: ExportFilters,
    export_format: ExportFormat,
    batch_size: int = BATCH_SIZE,
) -> Iterator[tuple[bytes, int]]:
    """The matching signatures in id order, rendered: (bytes, number of rows) per page.

    Keyset pagination, each page read in its own short connection and rendered
    CHUNK_ROWS rows at a time while it is read (rows as Python objects cost far more memory
    than their text). The connection goes back to the pool before the page is handed out, so
    a slow consumer never holds a connection or a transaction.
    """
    if export_format is ExportFormat.csv and engine.dialect.name == "postgresql":
        yield from _copy_pages(
            engine, petition_id=petition_id, filters=filters, batch_size=batch_size * 5 // 2
        )
        return
    done = 0
    last_id: int | None = None
    while True:
        query = _query(petition_id=petition_id, filters=filters)
        if last_id is not None:
            query = query.where(col(Signature.id) > last_id)
        query = query.order_by(col(Signature.id)).limit(batch_size)
        pieces: list[bytes] = []
        count = 0
        with engine.connect() as conn:
            for rows in conn.execute(query).partitions(CHUNK_ROWS):
                pieces.append(render(export_format, rows, first=done + count == 0))
                count += len(rows)
                last_id = rows[-1][0]
        if count == 0:
            return
        done += count
        page = b"".join(pieces)
        del pieces
        yield page, count
        if count < batch_size:
            return


def _copy_select(*, petition_id: int, filters: ExportFilters) -> Select[*tuple[Any, ...]]:
    """The CSV columns computed by PostgreSQL, exactly as csv_cells writes them."""

    def cell(column: signature_rows.Column) -> Any:
        text = _kind(column).sql(column.sql)
        return case((signature_rows.ANONYMISED, null()), else_=text) if column.personal else text

    query = sa_select(*(cell(column) for column in signature_rows.EXPORT)).where(
        col(Signature.petition_id) == petition_id
    )
    return _filtered(query, filters)


def _copy_pages(
    engine: Engine, *, petition_id: int, filters: ExportFilters, batch_size: int
) -> Iterator[tuple[bytes, int]]:
    """CSV pages written by PostgreSQL itself (COPY ... TO STDOUT), keyset-paged like
    iter_pages, each page in its own short transaction: no Python object per row, so a
    million rows take seconds. COPY ends lines with LF; RFC 4180 (and csv_cells) use CRLF."""
    last_id = 0
    while True:
        query = (
            _copy_select(petition_id=petition_id, filters=filters)
            .where(col(Signature.id) > last_id)
            .order_by(col(Signature.id))
            .limit(batch_size)
        )
        compiled = query.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)"
        chunks: list[bytes] = []
        with engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cursor, cursor.copy(statement, compiled.params) as copy:
                for chunk in copy:
                    chunks.append(bytes(chunk))
            conn.rollback()
        page = b"".join(chunks).replace(b"\n", b"\r\n")
        del chunks
        count = page.count(b"\r\n")
        if count == 0:
            return
        body = page[:-2]  # the last line, without its line end, starts with the last id
        start = body.rfind(b"\r\n")
        last_id = int(body[start + 2 if start >= 0 else 0 :].split(b",", 1)[0])
        yield page, count
        if count < batch_size:
            return


def stream_export(
    engine: Engine,
    *,
    petition_id: int,
    entry_id: int,
    export_format: ExportFormat,
    filters: ExportFilters,
    bom: bool = False,
    batch_size: int = BATCH_SIZE,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as UTF-8 chunks; completes the audit entry once the last chunk was taken.

    Memory stays flat whatever the number of rows. `on_rows(n)` is told of every page of `n`
    rows written (for progress bars). A consumer that stops early (a client that disconnects)
    leaves the audit entry marked not completed.
    """
    if export_format is ExportFormat.csv:
        yield ((UTF8_BOM if bom else "") + _csv_text([list(COLUMNS)])).encode()
    elif export_format is ExportFormat.json:
        yield b"["
    row_count = 0
    for page, count in iter_pages(
        engine,
        petition_id=petition_id,
        filters=filters,
        export_format=export_format,
        batch_size=batch_size,
    ):
        yield page
        row_count += count
        if on_rows is not None:
            on_rows(count)
    if export_format is ExportFormat.json:
        yield b"\n]\n"
    try:
        finish_export(engine, entry_id=entry_id, row_count=row_count)
    except SQLAlchemyError:
        # Everything was delivered; the entry keeps "completed": false, erring on the safe side.
        log.exception("could not mark export %s completed", entry_id)
