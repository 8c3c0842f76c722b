"""Client IP addresses as Chorus counts them (by network) and keeps them (only as a keyed hash).

An IPv4 address counts alone. An IPv6 address counts as its /64: that is what one subscriber
(one home, one phone, one server) is handed, and every address in it is theirs to use, so
counting each address alone would let one machine rotate through 2^64 addresses past every
per-IP limit. An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, what a dual-stack socket
reports for an IPv4 client) is the IPv4 address it carries.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import socket

from app.core.config import Settings


def source_network(ip: str) -> str:
    """The unit a client address is counted as: `203.0.113.7`, or `2001:db8:1:2::/64`."""
    text = ip.strip()
    try:  # An IPv4 address as it comes (the common case), in C: ipaddress's parse is ~20 us.
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text  # not an address (a test client's name): counted as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address), 64), strict=False))
    return str(address)


@functools.lru_cache(maxsize=16)
def _key(secret: str) -> bytes:
    """The hashing key derived from a secret (derived once per secret, not per address)."""
    return hmac.digest(secret.encode(), b"chorus-ip", "sha256")


def _hash(secret: str, value: str) -> str:
    return hmac.digest(_key(secret), value.encode(), "sha256").hex()[:32]


def ip_hash(settings: Settings, ip: str) -> str:
    """An HMAC of the address's network (source_network): lets us count and block a source
    without storing its address.

    A keyed hash, not bcrypt: it costs microseconds (Pytition's 270 ms bcrypt per signer is why
    it manages 8 signatures a second), and without SECRET_KEY it cannot be reversed by trying
    every IPv4 address.
    """
    return _hash(settings.SECRET_KEY.get_secret_value(), source_network(ip))


def ip_hashes(settings: Settings, ip: str) -> tuple[str, ...]:
    """Every hash this source may be stored under, ip_hash's first: the same with each key of
    SECRET_KEY_FALLBACKS (so a rotated key keeps its counts and block rules), and for an IPv6
    or IPv4-mapped address, the hashes of the address alone, as they were made before sources
    were counted by network (so block rules made then still hold)."""
    values = [source_network(ip)]
    if ip.strip() != values[0]:
        values.append(ip.strip())
    found = [_hash(secret, value) for value in values for secret in settings.signing_secrets]
    return tuple(dict.fromkeys(found))
