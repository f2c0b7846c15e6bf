"""Behind a reverse proxy, `tidings serve` believes X-Forwarded-For only from the proxies named
in TIDINGS_FORWARDED_ALLOW_IPS, so machine-open detection sees the visitor's address.

A real `tidings serve` on loopback: an open arriving through a trusted proxy "from" Apple's
17.0.0.0/8 is a machine open; the same header from an untrusted peer is ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from tests.messaging.conftest import free_port
from tests.messaging.helpers import make_contact
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.events.tokens import TrackingTokens

SECRET = "forwarded-test-secret"


def _serve_one_open(tmp_path: Path, clock: FakeClock, allow: str | None) -> bool:
    """Send one ordinary open with X-Forwarded-For: 17.1.2.3; answer its machine flag."""
    url = f"sqlite:///{tmp_path / 'fwd.db'}"
    database = create_database(url)
    upgrade(database)
    with database.session() as session:
        contact_id = make_contact(session, "ann@example.com", clock.now()).id
    # Made an hour ago: not a "within seconds of sending" machine open.
    token = TrackingTokens(SECRET, clock=FakeClock(clock.now() - timedelta(hours=1)))
    pixel = token.open_token(contact_id, "m-1")
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": url,
        "TIDINGS_SECRET_KEY": SECRET,
        "TIDINGS_PORT": str(port),
    }
    env.pop("TIDINGS_FORWARDED_ALLOW_IPS", None)
    if allow is not None:
        env["TIDINGS_FORWARDED_ALLOW_IPS"] = allow
    server = subprocess.Popen(
        [sys.executable, "-c", "from tidings.cli import main; main()", "serve", "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a loaded machine takes its time to import
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        answer = httpx.get(
            f"{base}/t/o/{pixel}.gif",
            headers={"X-Forwarded-For": "17.1.2.3", "User-Agent": "Mozilla/5.0 (Macintosh) Mail"},
        )
        assert answer.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)  # a clean shutdown writes the queued open
        server.wait(20)
    with database.session() as session:
        flags = list(
            session.scalars(select(Activity.machine).where(Activity.type == "email_opened"))
        )
    database.dispose()
    assert len(flags) == 1
    return bool(flags[0])


def test_forwarded_address_of_a_trusted_proxy_is_used(tmp_path: Path, clock: FakeClock) -> None:
    assert _serve_one_open(tmp_path, clock, allow=None) is True  # loopback is trusted by default


def test_forwarded_address_from_an_untrusted_peer_is_ignored(
    tmp_path: Path, clock: FakeClock
) -> None:
    assert _serve_one_open(tmp_path, clock, allow="10.9.9.9") is False
