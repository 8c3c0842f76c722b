"""Signatures as rows of the files that leave Chorus: an organiser's export (app/exports), the
annex delivered with a petition (app/letters) and a signer's own data download (app/rights).

Each file's columns are defined here once, and one function, `reader`, reads them off a row of
`select` (`values` off a loaded `Signature`): personal data (name, e-mail, postcode) is blank
once the signature is anonymised, whatever the row still holds. Each file then writes
the values in its own format (CSV cells safe for spreadsheets, JSON types); the PostgreSQL CSV
export has the database compute the same cells from the same columns (COPY, app/exports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Select, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from app.signatures.models import Signature, SignatureStatus


@dataclass(frozen=True)
class Column:
    """One column of a file: its header (or JSON key) and the signature attribute it shows."""

    name: str
    attribute: str
    personal: bool = False  # removed when the signature is anonymised: shown as `blank` then
    blank: str | None = ""

    @property
    def sql(self) -> Any:
        """The column of the `signature` table it reads."""
        return col(getattr(Signature, self.attribute))


def _same(name: str, *, personal: bool = False, blank: str | None = "") -> Column:
    return Column(name=name, attribute=name, personal=personal, blank=blank)


NAME = _same("name", personal=True)
EMAIL = _same("email", personal=True)
POSTCODE = _same("postcode", personal=True, blank=None)

# An organiser's export (CSV, NDJSON, JSON), in this order.
EXPORT = (
    _same("id"),
    NAME,
    EMAIL,
    _same("country"),
    POSTCODE,
    _same("status"),
    _same("consent_updates"),
    _same("locale"),
    _same("created_at"),
    _same("confirmed_at"),
)
# The annex delivered to officials: who signed and where from; postcode and confirmation time
# when the organiser asks for them (the delivery's `annex_fields`).
ANNEX = (NAME, _same("country"), POSTCODE, _same("confirmed_at"))
# Everything Chorus holds about a signature, for its signer (rights.SignatureData). Once
# anonymised, `email_normalised` holds `anonymised:<id>`, never the address.
DOWNLOAD = (
    _same("id"),
    NAME,
    EMAIL,
    _same("email_normalised"),
    _same("country"),
    POSTCODE,
    _same("consent_updates"),
    _same("locale"),
    _same("status"),
    _same("created_at"),
    _same("confirmed_at"),
    Column(name="confirmation_emails", attribute="confirmation_sends"),
    _same("withdrawn_at"),
    _same("anonymised_at"),
)

ANONYMISED = col(Signature.anonymised_at).is_not(None)


def _attributes(columns: Sequence[Column]) -> list[str]:
    """What `select` reads for `columns`, in its order."""
    return list(dict.fromkeys(["id", *(column.attribute for column in columns), "anonymised_at"]))


def reader(columns: Sequence[Column]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function that turns a row of `select(columns, ...)` into the values of `columns`, in
    their order, personal data blank once the signature is anonymised. The positions are
    worked out once, so an export of millions of rows pays a tuple per row, no more."""
    assert len(columns) > 1  # (itemgetter of one position gives the value, not a tuple)
    attributes = _attributes(columns)
    pick = itemgetter(*(attributes.index(column.attribute) for column in columns))
    blanks = [(i, column.blank) for i, column in enumerate(columns) if column.personal]
    gone = attributes.index("anonymised_at")

    def read(row: Sequence[Any]) -> tuple[Any, ...]:
        found: tuple[Any, ...] = pick(row)
        if row[gone] is None:
            return found
        blanked = list(found)
        for i, blank in blanks:
            blanked[i] = blank
        return tuple(blanked)

    return read


def values(columns: Sequence[Column], signature: Signature) -> dict[str, Any]:
    """One signature as a row of `columns`, {name: value} (as `reader` reads them)."""
    row = [getattr(signature, attribute) for attribute in _attributes(columns)]
    return dict(zip((column.name for column in columns), reader(columns)(row), strict=True))


def select(columns: Sequence[Column], *, petition_id: int) -> Select[Any]:
    """A petition's signatures with what `reader` reads for `columns`: the id first (exports
    page by it), each column's attribute, and when it was anonymised."""
    return sa_select(*(col(getattr(Signature, name)) for name in _attributes(columns))).where(
        col(Signature.petition_id) == petition_id
    )


# --- the annex ----------------------------------------------------------------------------------

ANNEX_PAGE = 5000


def _in_annex(petition_id: int) -> tuple[Any, ...]:
    """The signatures an annex lists: confirmed, and not anonymised."""
    return (
        col(Signature.petition_id) == petition_id,
        col(Signature.status) == SignatureStatus.confirmed,
        col(Signature.anonymised_at).is_(None),
    )


def annex(session: Session, *, petition_id: int) -> Iterator[tuple[Any, ...]]:
    """The rows of a petition's annex (the values of ANNEX), by id, ANNEX_PAGE at a time."""
    read = reader(ANNEX)
    last = 0
    while True:
        rows = session.execute(
            select(ANNEX, petition_id=petition_id)
            .where(*_in_annex(petition_id), col(Signature.id) > last)
            .order_by(col(Signature.id))
            .limit(ANNEX_PAGE)
        ).all()
        if not rows:
            return
        for row in rows:
            yield read(row)
        last = rows[-1][0]


def annex_count(session: Session, *, petition_id: int) -> int:
    """How many rows a petition's annex would have now."""
    return int(
        session.execute(
            sa_select(func.count()).select_from(Signature).where(*_in_annex(petition_id))
        ).scalar_one()
    )
