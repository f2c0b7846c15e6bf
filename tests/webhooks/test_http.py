"""safe_post: one resolution, checked, connected to as checked, with the original Host and SNI.

No real DNS: the resolver is injected. Servers are real (plain HTTP and HTTPS on loopback)."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.certificates import self_signed
from tidings.webhooks.http import (
    Delivery,
    UnsafeAddress,
    classify,
    is_public,
    resolve_target,
    safe_post,
)

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "240.0.0.1",  # reserved
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff0e::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


class Resolver:
    """Answers from a script, one answer per lookup (the last one repeats); counts lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_addresses_that_are_not_globally_routable_are_refused(address: str) -> None:
    resolver = Resolver([address])
    with pytest.raises(UnsafeAddress, match="not a public address"):
        resolve_target("https://hook.example/x", allow_private=False, resolver=resolver)
    literal = f"http://[{address}]/" if ":" in address else f"http://{address}/"
    with pytest.raises(UnsafeAddress):
        resolve_target(literal, allow_private=False, resolver=resolver)
    # TIDINGS_WEBHOOK_ALLOW_PRIVATE=true: allowed, still resolved once and taken as resolved
    target = resolve_target("https://hook.example/x", allow_private=True, resolver=resolver)
    assert target.address == ipaddress.ip_address(address)
    assert len(resolver.lookups) == 2  # one per call; the literal needs none


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_taken(address: str) -> None:
    target = resolve_target(
        "https://hook.example:8443/x", allow_private=False, resolver=Resolver([address])
    )
    assert is_public(target.address) and target.port == 8443 and target.host == "hook.example"


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    resolver = Resolver(["93.184.216.34", "127.0.0.1"])
    with pytest.raises(UnsafeAddress, match=r"127\.0\.0\.1"):
        resolve_target("https://hook.example/", allow_private=False, resolver=resolver)


@pytest.mark.parametrize("url", ["ftp://hook.example/", "file:///etc/passwd", "http:///x", "x"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(UnsafeAddress):
        resolve_target(url, allow_private=True, resolver=Resolver(["8.8.8.8"]))


@dataclass
class Seen:
    requests: list[dict[str, Any]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    status: int = 200


def _serve(bind: str, tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, Seen]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.requests.append({"host": self.headers["Host"], "body": body, "path": self.path})
            self.send_response(seen.status)
            if seen.status in (301, 302, 307, 308):
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((bind, 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def plain_server() -> Iterator[tuple[int, Seen]]:
    server, seen = _serve("127.0.0.1")
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_the_address_checked_is_the_address_connected_to(plain_server: tuple[int, Seen]) -> None:
    """A rebinding answer (loopback first, elsewhere on the second lookup) is never looked up
    twice: the request reaches the server at the first answer, with the original Host."""
    port, seen = plain_server
    resolver = Resolver(["127.0.0.1"], ["127.0.0.2"])  # nothing listens on 127.0.0.2
    response = safe_post(
        f"http://hook.example:{port}/in?x=1",
        json={"a": 1},
        headers={"Idempotency-Key": "k1"},
        allow_private=True,
        resolver=resolver,
        timeout=5,
    )
    assert response.status_code == 200
    assert len(resolver.lookups) == 1
    assert seen.requests == [
        {"host": f"hook.example:{port}", "body": b'{"a":1}', "path": "/in?x=1"}
    ]
    # Refused: the first and only lookup says loopback; nothing is sent anywhere.
    rebinding = Resolver(["127.0.0.1"], ["93.184.216.34"])
    with pytest.raises(UnsafeAddress):
        safe_post(
            f"http://hook.example:{port}/in", json={}, allow_private=False, resolver=rebinding
        )
    assert len(rebinding.lookups) == 1 and len(seen.requests) == 1


def test_a_redirect_is_an_answer_not_followed(plain_server: tuple[int, Seen]) -> None:
    port, seen = plain_server
    seen.status = 302
    response = safe_post(
        f"http://hook.example:{port}/",
        json={},
        allow_private=True,
        resolver=Resolver(["127.0.0.1"]),
    )
    assert response.status_code == 302 and len(seen.requests) == 1
    assert classify(302) is Delivery.RETRY
    assert [classify(c) for c in (200, 204, 400, 404, 408, 429, 500, 503)] == [
        Delivery.SENT,
        Delivery.SENT,
        Delivery.FAILED,
        Delivery.FAILED,
        Delivery.RETRY,
        Delivery.RETRY,
        Delivery.RETRY,
        Delivery.RETRY,
    ]


def test_https_sends_the_original_name_as_sni_and_checks_the_certificate_for_it(
    tmp_path: Path,
) -> None:
    cert_file, key_file = self_signed(tmp_path, "hook.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server, seen = _serve("127.0.0.1", tls)

    def remember(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        seen.server_names.append(name)

    tls.sni_callback = remember  # type: ignore[assignment]
    trust = ssl.create_default_context(cafile=str(cert_file))
    port = server.server_address[1]
    try:
        response = safe_post(
            f"https://hook.test:{port}/hook",
            json={"ok": True},
            allow_private=True,
            resolver=Resolver(["127.0.0.1"]),
            verify=trust,
            timeout=5,
        )
        assert response.status_code == 200
        assert seen.server_names == ["hook.test"]
        assert seen.requests[0]["host"] == f"hook.test:{port}"
        # The certificate must match the name in the URL, not the address connected to.
        with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
            safe_post(
                f"https://other.test:{port}/hook",
                json={},
                allow_private=True,
                resolver=Resolver(["127.0.0.1"]),
                verify=trust,
                timeout=5,
            )
        assert len(seen.requests) == 1
    finally:
        server.shutdown()
        server.server_close()
