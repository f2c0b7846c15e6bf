"""What `kill -9` of `tidings serve` may lose (issue 13): no click whose redirect was answered;
opens and visits only within TIDINGS_TRACKING_FLUSH_SECONDS. A real server on loopback."""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.messaging.conftest import free_port
from tests.messaging.helpers import make_contact
from tests.processes import start_serve, tidings_env
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.events.tokens import TrackingTokens

SECRET = "kill-test-secret"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


def _count(database: Database, kind: str) -> int:
    with database.session() as session:
        query = select(func.count()).select_from(Activity).where(Activity.type == kind)
        return int(session.scalar(query) or 0)


def test_kill_9_loses_no_answered_click_and_opens_only_within_the_window(
    database: Database, database_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    with database.session() as session:
        contact_id = make_contact(session, "ann@example.com", clock.now()).id
    # Made an hour ago: not "within seconds of sending" machine events.
    tokens = TrackingTokens(SECRET, clock=FakeClock(clock.now() - timedelta(hours=1)))
    port = free_port()
    env = tidings_env(database_url=database_url, secret_key=SECRET, tracking_flush_seconds="0.1")
    server = start_serve(env, tmp_path, port, "--no-worker")
    base = f"http://127.0.0.1:{port}"
    clicks = 40
    try:
        with httpx.Client(base_url=base, headers={"User-Agent": BROWSER}) as client:
            pixel = tokens.open_token(contact_id, "m1")
            for _ in range(10):
                assert client.get(f"/t/o/{pixel}.gif").status_code == 200
            deadline = time.monotonic() + 10  # the window is 0.1 s; the machine may be busy
            while _count(database, "email_opened") < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _count(database, "email_opened") == 10  # written without a shutdown
            for i in range(clicks):
                token = tokens.click_token(contact_id, f"https://shop.test/{i}", "m1")
                answer = client.get(f"/t/c/{token}", follow_redirects=False)
                assert answer.status_code == 302
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(20)
    assert _count(database, "link_clicked") == clicks
