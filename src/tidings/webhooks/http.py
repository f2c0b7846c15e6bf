"""Outgoing webhook calls that cannot be turned inward (server-side request forgery).

Every HTTP call Tidings makes to an address a user typed goes through `safe_post`:

1. the host is resolved **once** (the resolver can be injected, so tests need no DNS);
2. every address it resolves to must be globally routable — not loopback, private, link-local,
   shared (100.64.0.0/10), reserved, multicast or documentation space, and not such an IPv4
   address wrapped in IPv6 (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4
   `2002::/16`, NAT64 `64:ff9b::/96`; local-use NAT64 `64:ff9b:1::/48` is refused outright);
3. the connection goes to **that exact address**, with the original `Host` header and, for
   https, the original name as TLS SNI and as the name the certificate must match.

Checking a name and letting the HTTP client resolve it again would let a DNS answer that
changes between the two (DNS rebinding) reach loopback. Redirects are never followed (the
target of a redirect is not checked, and a webhook that moved is the sender's to fix), no proxy
from the environment is used, and no connection is kept for another call (a pooled TLS
connection to one address must not carry a request for another name).

`TIDINGS_WEBHOOK_ALLOW_PRIVATE=true` (allow_private) lifts rule 2 for local setups; the address
is still resolved once and connected to as resolved.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to connect to, in order of preference
Resolver = Callable[[str, int], Sequence[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_TIMEOUT = 10.0


class UnsafeAddress(Exception):
    """The URL is not an http(s) URL, its host cannot be resolved, or it resolves to an
    address that is not globally routable. Retrying does not help."""


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo), duplicates removed, in its order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress(f"{host}: cannot resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the ways to write one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether `address` is globally routable, also when it wraps an IPv4 address."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return True


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # as given
    host: str  # the name (or literal address) in the URL
    port: int
    address: Address  # what the connection goes to


def resolve_target(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> Target:
    """Check `url` and pick the one address a call to it connects to (raises UnsafeAddress)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeAddress(f"{url!r} is not a valid URL ({exc})") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeAddress(f"{url!r} is not an http(s) URL")
    try:
        answers: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        answers = resolver(host, port)
    addresses = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.partition("%")[0]))
        except ValueError:
            raise UnsafeAddress(f"{host}: resolved to {answer!r}, not an address") from None
    if not addresses:
        raise UnsafeAddress(f"{host}: no address")
    if not allow_private:
        # One address that is not public refuses the host: a name pointing at both the
        # internet and the inside is an attempt, not a configuration.
        for address in addresses:
            if not is_public(address):
                raise UnsafeAddress(
                    f"{host} resolves to {address}, which is not a public address "
                    "(set TIDINGS_WEBHOOK_ALLOW_PRIVATE=true to allow)"
                )
    return Target(url, host, port, addresses[0])


@lru_cache(maxsize=1)
def _default_tls() -> ssl.SSLContext:
    """The system's trusted CAs, loaded once (a context costs milliseconds to build)."""
    return ssl.create_default_context()


def safe_post(
    url: str,
    *,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    timeout: float = DEFAULT_TIMEOUT,
    verify: ssl.SSLContext | None = None,
) -> httpx.Response:
    """POST `json` (or the bytes `content`, with the caller's Content-Type) to `url`,
    connected to the address checked (see the module's docstring).

    Raises UnsafeAddress before connecting, httpx.HTTPError for network failures; any HTTP
    answer is returned as it is (see `classify`)."""
    target = resolve_target(url, allow_private=allow_private, resolver=resolver)
    original = httpx.URL(url)
    request_headers = {**(headers or {}), "Host": original.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.host} if original.scheme == "https" else {}
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: it would resolve the name itself
        verify=verify or _default_tls(),
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        request = client.build_request(
            "POST",
            original.copy_with(host=str(target.address)),
            json=json if content is None else None,
            content=content,
            headers=request_headers,
            extensions=extensions,
        )
        return client.send(request)


class Delivery(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # try again later (with backoff)
    FAILED = "failed"  # retrying will not help


def classify(status_code: int) -> Delivery:
    """2xx is delivered; 3xx (a redirect is not followed), 408, 429 and 5xx are retried;
    other 4xx fail for good."""
    if 200 <= status_code < 300:
        return Delivery.SENT
    if status_code in (408, 429) or status_code >= 500 or 300 <= status_code < 400:
        return Delivery.RETRY
    return Delivery.FAILED
