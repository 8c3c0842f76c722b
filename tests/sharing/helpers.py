"""Reading what link previews read (meta tags, PNG files), and confirmed signatures."""

from __future__ import annotations

import itertools
import struct
import zlib
from datetime import datetime
from html.parser import HTMLParser

from sqlmodel import Session

from app.core.config import Settings
from app.petitions.models import Petition
from app.signatures import tally as signature_tally
from app.signatures.models import Signature, SignatureStatus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class HeadTags(HTMLParser):
    """The <meta> and <link> tags of a page, as a crawler reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, list[str]] = {}
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "meta" and ("property" in values or "name" in values):
            key = values.get("property") or values["name"]
            self.meta.setdefault(key, []).append(values.get("content", ""))
        elif tag == "link":
            self.links.append(values)

    def one(self, key: str) -> str:
        [value] = self.meta[key]
        return value


def head_tags(html: str) -> HeadTags:
    parser = HeadTags()
    parser.feed(html)
    return parser


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG file, each checked against its CRC."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png_chunks(data)[0][1][:8])
    return width, height


def png_texts(data: bytes) -> dict[str, str]:
    """The PNG's text chunks (tEXt and uncompressed or compressed iTXt), by keyword."""
    texts: dict[str, str] = {}
    for kind, body in png_chunks(data):
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\0")
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            texts[keyword.decode("latin-1")] = (
                zlib.decompress(text) if compressed else text
            ).decode("utf-8")
    return texts


_signers = itertools.count(1)


def confirmed_at(
    session: Session, settings: Settings, petition: Petition, when: datetime, country: str = "UA"
) -> Signature:
    """A signature confirmed at `when`, counted as confirming counts it (its row, the tallies);
    each with an address of its own."""
    email = f"confirmed-{next(_signers)}@example.org"
    assert petition.id is not None
    signature = Signature(
        petition_id=petition.id,
        name="Signer",
        email=email,
        email_normalised=email,
        country=country,
        locale="en",
        status=SignatureStatus.confirmed,
        confirmed_at=when,
    )
    session.add(signature)
    session.flush()
    signature_tally.add_to_tallies(
        session, signature=signature, confirmed_at=when, settings=settings, delta=1
    )
    session.commit()
    return signature
