"""Webhooks (SSRF-safe, retried with backoff, one idempotency key), notifications, and the
worker's wake-ups. The address rules themselves: tests/webhooks/test_http.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from tests.automations.helpers import automation, make_contacts, tags_of
from tidings.automations.effects import deliver_due
from tidings.automations.engine import Engine
from tidings.automations.models import Effect
from tidings.automations.service import enrol_contacts, get_automation
from tidings.automations.worker import Worker
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.db.engine import Database


class Hook:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = 1
        self.failure = 500


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.calls.append((self.headers["Idempotency-Key"], body))
            status = state.failure if state.fail_first > 0 else 200
            state.fail_first -= 1
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", "http://127.0.0.1:1/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_is_retried_with_backoff_under_one_key(
    database: Database, clock: FakeClock, settings: Settings, hook: tuple[Hook, str]
) -> None:
    state, url = hook
    a = automation(
        database,
        clock,
        f"""
name: Hooked
steps:
  - {{id: call, action: webhook, url: "{url}", body: {{source: tidings}}}}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[cid])
    Engine(database, clock).run_until_idle()
    refused = settings.model_copy(update={"webhook_allow_private": False})
    allowed = settings.model_copy(update={"webhook_allow_private": True})
    assert deliver_due(database, clock, allowed) == 1  # HTTP 500: retried later
    assert deliver_due(database, clock, allowed) == 0  # not due yet
    clock.advance(seconds=121)
    assert deliver_due(database, clock, allowed) == 1
    with database.session() as session:
        effect = session.scalars(select(Effect)).one()
        assert (effect.status, effect.attempts) == ("sent", 2)
    keys = {key for key, _ in state.calls}
    assert len(state.calls) == 2 and len(keys) == 1
    body = state.calls[0][1]
    assert body["contact"]["id"] == cid and body["data"] == {"source": "tidings"}
    # The same automation with private addresses refused (the default): refused, not sent.
    (other,) = make_contacts(database, clock, 1, prefix="o")
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[other])
    Engine(database, clock).run_until_idle()
    deliver_due(database, clock, refused)
    with database.session() as session:
        statuses = sorted(session.scalars(select(Effect.status)))
    assert statuses == ["refused", "sent"]
    assert len(state.calls) == 2


def _run_one(database: Database, clock: FakeClock, step: str) -> None:
    a = automation(database, clock, f"name: One\nsteps:\n  - {step}\n")
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[cid])
    Engine(database, clock).run_until_idle()


def _effect(database: Database) -> Effect:
    with database.session() as session:
        effect = session.scalars(select(Effect)).one()
        session.expunge(effect)
    return effect


def test_a_redirect_is_retried_not_counted_as_sent(
    database: Database, clock: FakeClock, settings: Settings, hook: tuple[Hook, str]
) -> None:
    state, url = hook
    state.failure = 302
    _run_one(database, clock, f'{{id: call, action: webhook, url: "{url}"}}')
    allowed = settings.model_copy(update={"webhook_allow_private": True})
    assert deliver_due(database, clock, allowed) == 1
    effect = _effect(database)
    assert (effect.status, effect.attempts) == ("pending", 1)
    assert effect.last_error is not None and effect.last_error.startswith("HTTP 302")
    assert "not followed" in effect.last_error
    clock.advance(seconds=31)
    assert deliver_due(database, clock, allowed) == 1
    assert _effect(database).status == "sent" and len(state.calls) == 2


def test_a_notification_that_cannot_be_sent_fails_once_with_its_reason(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    """A subject with a line break can never be sent: failed at the first attempt, with the
    reason, instead of being taken up again every two minutes forever."""
    _run_one(
        database,
        clock,
        '{id: n, action: notify, to: ops@example.com, subject: "Hot lead\\r\\nBcc: x@evil.example"}',
    )
    with_smtp = settings.model_copy(update={"smtp_url": "smtp://127.0.0.1:9"})
    assert deliver_due(database, clock, with_smtp) == 1
    effect = _effect(database)
    assert (effect.status, effect.attempts) == ("failed", 1)
    assert effect.last_error is not None and "linefeed or carriage return" in effect.last_error
    clock.advance(hours=1)
    assert deliver_due(database, clock, with_smtp) == 0


def _go_went(database: Database, clock: FakeClock, name: str) -> int:
    """An automation adding tag Went when tag Go is added; returns a contact for it."""
    automation(
        database,
        clock,
        f"""
name: {name}
trigger: {{type: tag_added, tag: Go}}
steps: [{{id: t, action: add_tag, tag: Went}}]
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    return cid


def _went_within(database: Database, clock: FakeClock, cid: int, seconds: float) -> bool:
    """Add tag Go to the contact; whether the worker added Went within `seconds`."""
    with database.session() as session:
        contact = session.get(Contact, cid)
        assert contact is not None
        contacts.add_tag(session, contact, "Go", now=clock.now(), cause="api")
    deadline = time.monotonic() + seconds
    while "Went" not in tags_of(database, cid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "Went" in tags_of(database, cid) and time.monotonic() < deadline


def test_worker_wakes_at_once_for_work_made_in_process(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    cid = _go_went(database, clock, "Instant")
    worker = Worker(database, clock, settings=settings, poll_seconds=60)
    worker.start()
    try:
        time.sleep(0.2)  # the first pass finds nothing; now it waits up to 60 s
        assert _went_within(database, clock, cid, 5)
    finally:
        worker.stop()


def test_postgresql_notify_wakes_workers_of_other_processes(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    if database.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    cid = _go_went(database, clock, "Remote")
    worker = Worker(database, clock, settings=settings, poll_seconds=60)
    worker.start()
    try:
        # Deaf to this process's own wake-ups: only a NOTIFY can wake it now.
        worker._unsubscribe()
        worker._unsubscribe = None
        time.sleep(0.5)
        assert _went_within(database, clock, cid, 10)
    finally:
        worker.stop()
