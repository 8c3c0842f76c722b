"""Near-duplicate letters: MinHash signatures of messages and the recent letters they resemble.

Each message gets a MinHash signature over its word triples: the share of equal slots in two
signatures estimates how much of their text the two letters share (Jaccard similarity). The
signature is cut into bands; letters with an equal band are the candidates, looked up through
an index, and only those (the most recent few hundred) are compared slot by slot.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.letters.models import Letter, LetterBand, LetterStatus

_WORD = re.compile(r"\w+")
SLOTS = 64
BANDS = 16  # of SLOTS // BANDS slots each
NEAR_DUPLICATE = 0.8  # estimated share of text in common from which letters are near-duplicates
CANDIDATES = 500
_PRIME = (1 << 61) - 1
_COEFFICIENTS = [
    (
        int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest()) % _PRIME | 1,
        int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest()) % _PRIME,
    )
    for i in range(SLOTS)
]


def signature(text: str) -> bytes:
    """The MinHash signature of a text: SLOTS minima of SLOTS hash functions, 32 bits each."""
    words = _WORD.findall(text.casefold())
    shingles = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
    hashes = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest()) for s in shingles]
    minima = [min(((a * h + b) % _PRIME) for h in hashes) & 0xFFFFFFFF for a, b in _COEFFICIENTS]
    return b"".join(m.to_bytes(4, "big") for m in minima)


def similarity(first: bytes, second: bytes) -> float:
    """The estimated share of text two signatures' letters have in common (0 to 1)."""
    same = sum(first[i : i + 4] == second[i : i + 4] for i in range(0, SLOTS * 4, 4))
    return same / SLOTS


def bands(sig: bytes) -> list[int]:
    """The signature's band hashes: letters sharing one are near-duplicate candidates."""
    size = len(sig) // BANDS
    return [
        int.from_bytes(
            hashlib.blake2b(bytes([n]) + sig[n * size : (n + 1) * size], digest_size=8).digest(),
            signed=True,
        )
        for n in range(BANDS)
    ]


def similar_count(session: Session, *, campaign_id: int, sig: bytes, settings: Settings) -> int:
    """How many recent letters of the campaign are nearly identical to this signature."""
    since = utcnow() - timedelta(days=settings.LETTER_DUPLICATE_WINDOW_DAYS)
    candidates = (
        select(LetterBand.letter_id)
        .where(LetterBand.campaign_id == campaign_id, col(LetterBand.band_hash).in_(bands(sig)))
        .distinct()
        .order_by(col(LetterBand.letter_id).desc())
        .limit(CANDIDATES)
    )
    others = session.exec(
        select(Letter.signature).where(
            col(Letter.id).in_(candidates.scalar_subquery()),
            col(Letter.created_at) >= since,
            Letter.status == LetterStatus.confirmed,  # bots' unconfirmed letters do not count
        )
    ).all()
    return sum(1 for other in others if similarity(sig, other) >= NEAR_DUPLICATE)
