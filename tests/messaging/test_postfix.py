"""End to end through a real MTA: Tidings hands a broadcast to Debian's Postfix, which delivers
it to Maildirs, bounces the unknown users with its own DSNs to the VERP addresses, and relays
those (and a mailto unsubscribe) to `tidings inbound`, run as the command a user runs.
The delivered messages are checked by an independent DKIM verifier (dkimpy)."""

from __future__ import annotations

import asyncio
import email
import os
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.utils import parseaddr
from pathlib import Path

import dkim
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.messaging.conftest import free_port, sender_options
from tests.messaging.postfix import Postfix, unavailable
from tests.messaging.test_api import contact
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.messaging.dkim import DkimSigner
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sender import Sender

BOUNCES = "bounces.example.com"
DOMAIN = "mail.example.org"
KNOWN = ["ann", "bob"]
UNKNOWN = ["ghost", "left-years-ago"]


@pytest.fixture(scope="module")
def postfix_available() -> None:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Postfix test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def relay(postfix_available: None, database_url: str, tmp_path: Path) -> Iterator[Postfix]:
    """Postfix relaying the bounce domain to `tidings inbound --host 127.0.0.1 --port N`, run
    as its own process on the test's database (both start at the same time)."""
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_SECRET_KEY": "test-secret-key",
        "TIDINGS_UNSUBSCRIBE_MAILTO": f"unsubscribe@{BOUNCES}",
    }
    command = [str(Path(sys.executable).parent / "tidings"), "inbound"]
    inbound = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        instance = Postfix.start(
            port=free_port(), local_domain=DOMAIN, mailboxes=KNOWN, relay={BOUNCES: port}
        )
        try:
            _wait(lambda: _accepts(port), 30, "tidings inbound to listen")
            yield instance
        finally:
            instance.stop()
    finally:
        inbound.terminate()
        inbound.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(
    done: Callable[[], bool], seconds: float, what: str, log: Callable[[], str] = str
) -> None:
    end = time.monotonic() + seconds
    while not done():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}\n{log()}")
        time.sleep(0.05)


def test_a_broadcast_through_postfix_delivers_bounces_and_unsubscribes(
    client: TestClient,
    database: Database,
    clock: FakeClock,
    relay: Postfix,
    dkim_signer: DkimSigner,
) -> None:
    news = client.post("/api/v1/lists", json={"name": "News"}).json()["id"]
    people = {name: contact(client, f"{name}@{DOMAIN}", lists=["News"]) for name in KNOWN + UNKNOWN}
    template = client.post(
        "/api/v1/templates",
        json={
            "name": "spring",
            "subject": "Spring offers for {{ contact.email }}",
            "html": '<p>See <a href="https://shop.example.com/spring">our offers</a>.</p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            "track_opens": False,
            "track_clicks": False,
        },
    ).json()["id"]
    queued = client.post(
        "/api/v1/broadcasts", json={"name": "Spring", "template_id": template, "list_id": news}
    )
    assert queued.status_code == 201 and queued.json()["recipients"] == 4

    options = sender_options(
        relay.port, dkim_signer, bounce_domain=BOUNCES, unsubscribe_mailto=f"unsubscribe@{BOUNCES}"
    )

    async def send() -> None:
        sender = Sender(database, clock, options)
        try:
            stats = await sender.run_once()
        finally:
            await sender.close()
        assert stats.sent == 4  # Postfix accepts them all; it bounces later, as relays do

    asyncio.run(send())

    def status(name: str) -> str:
        return str(client.get(f"/api/v1/contacts/{people[name]}").json()["status"])

    _wait(
        lambda: (
            all(relay.delivered(n) for n in KNOWN) and all(status(n) == "bounced" for n in UNKNOWN)
        ),
        30,
        "delivery and the DSNs",
        relay.log,
    )
    assert {n: status(n) for n in KNOWN} == {"ann": "subscribed", "bob": "subscribed"}
    with database.session() as session:
        outbox = dict(session.execute(select(OutboxMessage.recipient, OutboxMessage.status)).all())
        bounced = session.scalars(
            select(Activity.data).where(Activity.type == "email_bounced")
        ).all()
    assert outbox == {
        "ann@mail.example.org": "sent",
        "bob@mail.example.org": "sent",
        "ghost@mail.example.org": "bounced",
        "left-years-ago@mail.example.org": "bounced",
    }
    assert len(bounced) == 2 and all(b["status"] == "5.1.1" for b in bounced), bounced

    # What Postfix delivered verifies with an independent verifier (Postfix added its
    # Received and Return-Path headers above the signature).
    record = dkim_signer.dns_record().encode()

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"s1._domainkey.example.com." else None

    for name in KNOWN:
        [data] = relay.delivered(name)
        assert data.startswith(b"Return-Path: <bounce+")
        assert dkim.verify(data.replace(b"\n", b"\r\n"), dnsfunc=dns), name
        assert f"Spring offers for {name}@mail.example.org" in data.decode()

    # The mailto in ann's List-Unsubscribe, sent through the same relay, reaches `tidings
    # inbound` and unsubscribes her.
    message = email.message_from_bytes(relay.delivered("ann")[0])
    mailto = next(
        part.strip(" <>")
        for part in str(message["List-Unsubscribe"]).replace("\n", "").split(",")
        if "mailto:" in part
    )
    address, _, query = mailto.removeprefix("mailto:").partition("?subject=")
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as smtp:
        smtp.sendmail(
            "ann@mail.example.org",
            [parseaddr(address)[1]],
            f"From: ann@mail.example.org\r\nTo: {address}\r\nSubject: {query}\r\n\r\n\r\n".encode(),
        )
    _wait(lambda: status("ann") == "unsubscribed", 30, "the mailto unsubscribe", relay.log)
    assert status("bob") == "subscribed"
