"""Where webhooks may go: the URL rules and the address checks against SSRF.

An organiser types the URL, and Chorus's worker POSTs to it from inside the hosting network, so
a URL naming an internal service (a database's HTTP port, a cloud metadata service at
169.254.169.254, an admin interface on 10.x) would let an organiser reach it. Only public
addresses are allowed: the name is resolved and every address it has must be public, at
registration and again at every delivery (a name can be re-pointed after registration), and the
delivery connects to the very address checked, so a second lookup cannot swap it (DNS
rebinding). Loopback is allowed when WEBHOOK_ALLOW_LOOPBACK is set, for development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


class Refused(Exception):
    """A URL or address webhooks may not use. The text says why, for the organiser (the API's
    message); `reason` names the rule broken and `values` the host or address concerned, for a
    page that says it in its reader's language (the console)."""

    def __init__(self, message: str, reason: str, **values: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.values = values


# What `refusal`'s reasons mean, in the API's words.
WHY = {
    "loopback": "a loopback address",
    "not_public": "not a public address (private, link-local or reserved)",
}


def parse(url: str) -> httpx.URL:
    """The URL if its form is acceptable (http or https, a host name or address, no user name
    or password, no fragment); Refused otherwise. Addresses are checked by `check`/`resolve`."""
    if not url:
        raise Refused("Give the URL to send the events to.", "empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise Refused("The URL may not contain spaces or control characters.", "characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise Refused("This is not a URL.", "not_url") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused("Use an http:// or https:// URL.", "scheme")
    if parsed.userinfo:
        raise Refused(
            "Put no user name or password in the URL: deliveries are signed instead.", "userinfo"
        )
    if parsed.fragment:
        raise Refused("A URL with a #fragment cannot be requested; leave it out.", "fragment")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise Refused("The URL needs a host.", "no_host")
    if _literal(host) is None and not _HOSTNAME.fullmatch(host):
        raise Refused("The URL's host is not a valid host name.", "bad_host", host=host)
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def refusal(address: IPAddress, settings: Settings) -> str | None:
    """Why a webhook may not be sent to `address`: "loopback" or "not_public" (WHY says what
    they mean); None: it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        if settings.WEBHOOK_ALLOW_LOOPBACK:
            return None
        return "loopback"
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return "not_public"
    return None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _check_all(host: str, addresses: list[IPAddress], settings: Settings) -> None:
    if not addresses:
        raise Refused(f"{host} does not resolve to any address.", "no_address", host=host)
    for address in addresses:
        reason = refusal(address, settings)
        if reason is None:
            continue
        if _literal(host) is not None:
            raise Refused(
                f"Webhooks go to public addresses only: {host} is {WHY[reason]}.", reason, host=host
            )
        raise Refused(
            f"Webhooks go to public addresses only: {host} resolves to {address}, which is "
            f"{WHY[reason]}.",
            f"{reason}_resolved",
            host=host,
            address=str(address),
        )


def _addresses(infos: list[Any]) -> list[IPAddress]:
    """The distinct addresses of getaddrinfo's answer, in its order."""
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check(url: str, settings: Settings) -> httpx.URL:
    """A URL an endpoint may be registered with (`parse`, then https in production, then every
    address of its host public); Refused with the reason otherwise. Looks the host up."""
    parsed = parse(url)
    if settings.ENVIRONMENT == "production" and parsed.scheme != "https":
        raise Refused("Use an https:// URL: deliveries carry signers' data.", "https_only")
    host = parsed.raw_host.decode("ascii").lower()
    literal = _literal(host)
    if literal is not None:
        _check_all(host, [literal], settings)
        return parsed
    try:
        infos = socket.getaddrinfo(host, _port(parsed), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(
            f"{host} does not resolve: check the host name.", "unresolvable", host=host
        ) from None
    _check_all(host, _addresses(infos), settings)
    return parsed


@dataclass(frozen=True)
class Destination:
    """Where one delivery connects: the checked address, and the name the server knows."""

    url: httpx.URL  # the URL with the checked address in place of the host name
    host_header: str  # host[:port] as the endpoint's URL gives it
    server_name: str | None  # for TLS: the name to ask for (SNI) and check the certificate of


async def resolve(url: str, settings: Settings) -> Destination:
    """Look the endpoint's host up now and pick an address to connect to; Refused when the URL
    is no longer acceptable or any address of the host is not public."""
    parsed = parse(url)
    host = parsed.raw_host.decode("ascii").lower()
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, _port(parsed), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{host} does not resolve ({exc})", "unresolvable", host=host) from None
        addresses = _addresses(infos)
    _check_all(host, addresses, settings)
    netloc = parsed.netloc.decode("ascii")
    return Destination(
        url=parsed.copy_with(host=str(addresses[0])),
        host_header=netloc,
        server_name=host if parsed.scheme == "https" and literal is None else None,
    )
