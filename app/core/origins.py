"""Web origins (scheme, host, port), as an organiser lists the sites that may frame a page.

An origin goes into a Content-Security-Policy header (`frame-ancestors`), so only exact origins
written the one way browsers compare them are accepted: `https://Example.org:443/` becomes
`https://example.org`; a path, query, user name, wildcard or anything that could end the
directive (`;`, `,`, a space) is refused with the reason.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

DEFAULT_PORTS = {"http": 80, "https": 443}
# One DNS label: letters, digits and hyphens, not at either end (IDNs are given as xn--).
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ALLOWED = re.compile(r"[A-Za-z0-9.:/\[\]%-]+")


def _invalid(message: str, **values: str) -> PydanticCustomError:
    return PydanticCustomError("origin_invalid", message, values)


def _host(host: str) -> str:
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise _invalid("{host} is not an IPv6 address", host=host) from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _invalid("{host} is not a host name", host=host) from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _invalid("{host} is not a host name", host=host)
    return ".".join(labels)


def web_origin(value: str) -> str:
    """The origin `value` names, written as browsers compare it (`https://example.org`,
    `http://127.0.0.1:8080`); PydanticCustomError `origin_invalid` when it is not one."""
    text = value.strip()
    if not text:
        raise _invalid("Give an origin such as https://example.org")
    try:
        text.encode("ascii")
        ascii_text = text
    except UnicodeEncodeError:  # an internationalised host name, checked below
        ascii_text = "x"
    if not _ALLOWED.fullmatch(ascii_text):
        raise _invalid(
            "{value} has characters an origin cannot have (only the site's address, e.g. "
            "https://example.org)",
            value=text,
        )
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. a bracketed host that is not an IPv6 address
        raise _invalid("{value} is not an origin", value=text) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise _invalid("{value} must start with https:// (or http://)", value=text)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in text:
        raise _invalid(
            "{value} is a page address: give only the site (scheme, host and port), e.g. "
            "https://example.org",
            value=text,
        )
    if "@" in parts.netloc or not parts.hostname:
        raise _invalid("{value} has no host, or a user name", value=text)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _invalid("{value} has an invalid port", value=text)
    netloc = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    host = _host(netloc.lower() if netloc.startswith("[") else netloc)
    if port is not None and port != DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"
