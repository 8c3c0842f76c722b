"""E-mail addresses: check_email answers as email_validator does for the whole address."""

from __future__ import annotations

import itertools

import pytest
from pydantic_core import PydanticCustomError

from app.core import addresses
from app.core.addresses import check_email

LOCALS = [
    "a",
    "Jane.Doe",
    "jane+petitions",
    "o'brien",
    "x" * 64,
    "x" * 65,
    "Postmaster",  # lower-cased whole (RFC 2142)
    "abuse",
    ".dot",
    "dot.",
    "two..dots",
    '"quoted"',
    '"with space"',
    "back\\slash",
    "юлія",  # needs SMTPUTF8: refused
    "jane doe",
    "",
    "a(comment)",
]
DOMAINS = [
    "gmail.com",
    "GMail.Com",
    "naver.com",
    "ukr.net",
    "lab7.example.org",
    "bücher.example",  # IDNA
    "xn--bcher-kva.example",
    "пример.рф",
    "localhost",
    "something.test",  # special use: refused
    "-bad.example.org",
    "a" * 64 + ".example.org",  # a label over 63
    ("a" * 60 + ".") * 4 + "org",  # near the length limit with a long local part
    "example.org.",
    "exa mple.org",
    "[192.0.2.1]",
    "example.org>",
    "x@example.org",
    "",
]


def whole(value: str) -> str | tuple[str, str]:
    try:
        return addresses._check_whole(value)
    except PydanticCustomError as exc:
        return (exc.type, str(exc))


def quick(value: str) -> str | tuple[str, str]:
    try:
        return check_email(value)
    except PydanticCustomError as exc:
        return (exc.type, str(exc))


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_address_gets_the_whole_validator_s_answer(domain: str) -> None:
    addresses._domain.cache_clear()
    for round_ in range(2):  # the domain unknown, then known
        for local in LOCALS:
            value = f"{local}@{domain}"
            assert quick(value) == whole(value), (round_, value)
        for local, other in itertools.product(LOCALS[:3], ["<a@b.org>", " Jane <a@b.org>"]):
            value = f"{local}@{domain}{other}"
            assert quick(value) == whole(value), (round_, value)


def test_a_known_domain_is_not_validated_again() -> None:
    addresses._domain.cache_clear()
    check_email("first@lab1.example.org")
    check_email("second@lab1.example.org")
    check_email("Third.Signer+x@lab1.example.org")
    info = addresses._domain.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    assert check_email("a@bücher.example") == "a@xn--bcher-kva.example"
    assert check_email("POSTMASTER@Example.org") == "postmaster@example.org"
