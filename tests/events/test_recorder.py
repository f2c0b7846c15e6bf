"""The tracking queue (issue 13): one bad event never blocks it, an unreachable database keeps
it (bounded), and a click is stored before its redirect is answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.app import create_app
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts import service
from tidings.db.engine import Database, create_database
from tidings.events.recorder import DatabaseUnavailable, TrackingRecorder
from tidings.events.service import IngestReport, ingest_events
from tidings.events.tokens import TrackingTokens

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


def _contact(database: Database, clock: FakeClock) -> int:
    with database.session() as session:
        return service.upsert_contacts(
            session, [service.ContactInput(email="ann@example.com")], now=clock.now(), cause="api"
        ).contact_ids[0]


def _count(database: Database, kind: str) -> int:
    with database.session() as session:
        query = select(func.count()).select_from(Activity).where(Activity.type == kind)
        return int(session.scalar(query) or 0)


def _visit(cid: int, url: str, clock: FakeClock) -> dict[str, Any]:
    return {
        "type": "site_visit",
        "contact_id": cid,
        "url": url,
        "occurred_at": clock.now().isoformat(),
    }


def _add_visits(recorder: TrackingRecorder, cid: int, urls: list[str], clock: FakeClock) -> None:
    for url in urls:
        recorder.add(_visit(cid, url, clock))


def test_a_page_view_with_a_nul_never_stops_tracking(
    settings: Settings, database: Database, clock: FakeClock
) -> None:
    """On PostgreSQL the NUL made every later batch fail and retry forever."""
    cid = _contact(database, clock)
    tokens = TrackingTokens("test-secret-key", clock=clock)
    open_token = tokens.open_token(cid, None)
    clock.advance(minutes=5)
    app = create_app(settings, database=database, clock=clock)
    with TestClient(app) as client:
        bad = {"c": tokens.contact_token(cid), "u": "https://shop.test/\u0000"}
        assert client.post("/t/v", json=bad).status_code == 400
        bad_referrer = {**bad, "u": "https://shop.test/ok", "r": "https://x.test/\u0000"}
        assert client.post("/t/v", json=bad_referrer).status_code == 204
        for _ in range(20):
            client.get(f"/t/o/{open_token}.gif", headers={"User-Agent": BROWSER})
        app.state.tracking.flush()
        assert app.state.tracking.pending() == 0
    assert _count(database, "email_opened") == 20
    assert _count(database, "site_visit") == 1  # the referrer with a NUL was left out


def _failing_on(poison: str) -> Any:
    """`ingest_events`, failing the whole transaction when a batch holds the poisoned URL (as
    a value the database refuses would)."""

    def ingest(session: Session, events: Sequence[Any], **kwargs: Any) -> IngestReport:
        report = ingest_events(session, events, **kwargs)
        if any(e.get("url") == poison for e in events):
            raise ValueError("refused by the database")
        return report

    return ingest


def test_an_event_the_database_refuses_is_dropped_alone(
    database: Database, clock: FakeClock
) -> None:
    cid = _contact(database, clock)
    recorder = TrackingRecorder(
        database, clock, flush_seconds=3600, ingest=_failing_on("https://poison.test/")
    )
    recorder.start()  # queues; written by the flush below
    urls = [f"https://shop.test/{i}" for i in range(100)]
    urls[17] = urls[60] = "https://poison.test/"
    _add_visits(recorder, cid, urls, clock)
    report = recorder.flush()
    assert (report.stored, recorder.dropped, recorder.pending()) == (98, 2, 0)
    assert _count(database, "site_visit") == 98
    recorder.add(_visit(cid, "https://shop.test/after", clock))
    recorder.stop()
    assert _count(database, "site_visit") == 99


def test_an_unreachable_database_keeps_the_queue_bounded(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    cid = _contact(database, clock)
    unreachable = create_database(f"sqlite:///{tmp_path / 'missing' / 'tidings.db'}")
    recorder = TrackingRecorder(unreachable, clock, flush_seconds=3600, max_queue=30)
    recorder.start()
    _add_visits(recorder, cid, [f"https://shop.test/{i}" for i in range(25)], clock)
    with pytest.raises(DatabaseUnavailable):
        recorder.flush()
    assert (recorder.pending(), recorder.dropped) == (25, 0)  # nothing given up on
    _add_visits(recorder, cid, [f"https://shop.test/late{i}" for i in range(10)], clock)
    assert (recorder.pending(), recorder.dropped) == (30, 5)  # bounded
    recorder.record_now(_visit(cid, "https://shop.test/click", clock))  # queued: full, dropped
    assert recorder.dropped == 6
    recorder.database = database  # the database is back
    assert recorder.flush().stored == 30
    recorder.stop()
    assert _count(database, "site_visit") == 30


def test_a_click_is_stored_before_the_redirect_is_answered(
    settings: Settings, database: Database, clock: FakeClock
) -> None:
    cid = _contact(database, clock)
    tokens = TrackingTokens("test-secret-key", clock=clock)
    clock.advance(minutes=5)
    slow = settings.model_copy(update={"tracking_flush_seconds": 60})
    app = create_app(slow, database=database, clock=clock)
    with TestClient(app, follow_redirects=False) as client:
        pixel = tokens.open_token(cid, "m1")
        client.get(f"/t/o/{pixel}.gif", headers={"User-Agent": BROWSER})
        assert app.state.tracking.pending() == 1  # the open waits for its window
        for i in range(3):
            token = tokens.click_token(cid, f"https://shop.test/{i}", "m1")
            response = client.get(f"/t/c/{token}", headers={"User-Agent": BROWSER})
            assert response.status_code == 302
            assert _count(database, "link_clicked") == i + 1  # before any flush
        # The open queued before went out with the first click's write.
        assert _count(database, "email_opened") == 1 and app.state.tracking.pending() == 0


def test_clicks_arriving_together_share_a_write(database: Database, clock: FakeClock) -> None:
    cid = _contact(database, clock)
    writes: list[int] = []

    def slow_first_write(session: Session, events: Sequence[Any], **kwargs: Any) -> IngestReport:
        """The first write lasts until the other clicks wait."""
        writes.append(len(events))
        deadline = time.monotonic() + 10
        while len(writes) == 1 and writes[0] + recorder.pending() < 20:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return ingest_events(session, events, **kwargs)

    recorder = TrackingRecorder(database, clock, flush_seconds=3600, ingest=slow_first_write)
    recorder.start()
    clicks = [
        threading.Thread(
            target=recorder.record_now,
            args=({**_visit(cid, f"https://shop.test/{i}", clock), "type": "link_clicked"},),
        )
        for i in range(20)
    ]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(10)
    recorder.stop()
    assert _count(database, "link_clicked") == 20
    assert len(writes) == 2 and sum(writes) == 20  # the first click's write, then the rest
