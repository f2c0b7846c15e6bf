"""SMTP over TLS: implicit TLS (smtps://) and STARTTLS, against aiosmtpd with a self-signed
certificate made in the test (hence ?verify=false), with AUTH."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.certificates import self_signed
from tests.messaging.conftest import SinkHandler, free_port, sender_options
from tests.messaging.test_sender import queue
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.messaging.sender import Sender
from tidings.messaging.transport import parse_smtp_url


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = self_signed(folder, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"user",
        b"secret",
    )
    return AuthResult(success=ok)


@pytest.fixture(params=["smtps", "starttls"])
def tls_sink(
    request: pytest.FixtureRequest, tls_context: ssl.SSLContext
) -> Iterator[tuple[SinkHandler, str]]:
    handler = SinkHandler()
    port = free_port()
    if request.param == "smtps":
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            ssl_context=tls_context,
            authenticator=_authenticator,
            auth_require_tls=False,  # aiosmtpd does not count implicit TLS for AUTH
        )
        url = f"smtps://user:secret@127.0.0.1:{port}?verify=false"
    else:
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=tls_context,
            require_starttls=True,
            authenticator=_authenticator,
            auth_require_tls=True,
        )
        url = f"smtp://user:secret@127.0.0.1:{port}?starttls=true&verify=false"
    controller.start()
    try:
        yield handler, url
    finally:
        controller.stop()


def test_delivery_over_tls_with_auth(
    database: Database, clock: FakeClock, tls_sink: tuple[SinkHandler, str]
) -> None:
    handler, url = tls_sink
    queue(database, clock, ["ann@example.org"])

    async def main() -> int:
        sender = Sender(database, clock, sender_options(0, smtp=parse_smtp_url(url, timeout=5)))
        try:
            return (await sender.run_once()).sent
        finally:
            await sender.close()

    assert asyncio.run(main()) == 1
    assert handler.count_by_recipient() == {"ann@example.org": 1}
