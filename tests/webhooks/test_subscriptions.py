"""Native webhook subscriptions: /api/v1/webhooks, signed JSON delivered by the worker's
webhook pass through the durable queue, retries with backoff, disabling on 410 and on
repeated failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tidings.app import create_app
from tidings.automations.worker import Worker
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.webhooks.deliver import MAX_FAILURES
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.worker import run_webhooks

from .receiver import Receiver, receiver


@pytest.fixture
def loopback_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def hooks_app(loopback_settings: Settings, database: Database, clock: FakeClock) -> FastAPI:
    return create_app(loopback_settings, database=database, clock=clock)


@pytest.fixture
def api(hooks_app: FastAPI, api_key: str) -> Iterator[TestClient]:
    with TestClient(hooks_app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {api_key}"
        yield c


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def _pass(database: Database, clock: FakeClock, settings: Settings) -> int:
    return run_webhooks(database, clock, settings)


def test_signed_json_for_the_chosen_events(
    api: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    loopback_settings: Settings,
) -> None:
    made = api.post("/api/v1/webhooks", json={"url": hook.url, "events": ["tag_added"]})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret and api.get(f"/api/v1/webhooks/{made.json()['id']}").json()["secret"] is None
    _pass(database, clock, loopback_settings)  # the dispatcher starts at the log's end
    contact = api.post("/api/v1/contacts", json={"email": "a@example.com"}).json()
    api.put(f"/api/v1/contacts/{contact['id']}/tags/vip")
    api.put(f"/api/v1/contacts/{contact['id']}/lists/1")  # not chosen (and no such list)
    assert _pass(database, clock, loopback_settings) == 1
    (request,) = hook.requests
    body = json.loads(request.body)
    assert body["type"] == "tag_added" and body["contact"]["email"] == "a@example.com"
    assert body["data"]["tag"] == "vip"
    timestamp = request.headers["X-Tidings-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["X-Tidings-Signature"] == "sha256=" + expected.hexdigest()
    assert request.headers["X-Tidings-Event"] == "tag_added"
    assert _pass(database, clock, loopback_settings) == 0  # delivered once
    deliveries = api.get(f"/api/v1/webhooks/{made.json()['id']}/deliveries").json()
    assert [d["status"] for d in deliveries] == ["sent"]


def test_failures_are_retried_with_backoff(
    api: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    loopback_settings: Settings,
) -> None:
    api.post("/api/v1/webhooks", json={"url": hook.url, "events": ["contact_created"]})
    _pass(database, clock, loopback_settings)
    hook.answers = [503, 500]
    api.post("/api/v1/contacts", json={"email": "b@example.com"})
    assert _pass(database, clock, loopback_settings) == 1
    with database.session() as session:
        (row,) = session.scalars(select(WebhookDelivery)).all()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    assert _pass(database, clock, loopback_settings) == 0  # not due yet
    clock.advance(seconds=31)
    assert _pass(database, clock, loopback_settings) == 1  # 500 again
    clock.advance(seconds=61)
    assert _pass(database, clock, loopback_settings) == 1
    with database.session() as session:
        assert session.scalars(select(WebhookDelivery.status)).all() == ["sent"]
    assert len(hook.requests) == 3


def test_gone_disables_the_subscription(
    api: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    loopback_settings: Settings,
) -> None:
    made = api.post("/api/v1/webhooks", json={"url": hook.url, "events": ["contact_created"]})
    _pass(database, clock, loopback_settings)
    hook.answers = [410]
    api.post("/api/v1/contacts", json={"email": "c@example.com"})
    api.post("/api/v1/contacts", json={"email": "d@example.com"})
    _pass(database, clock, loopback_settings)
    state = api.get(f"/api/v1/webhooks/{made.json()['id']}").json()
    assert state["active"] is False and "410" in state["disabled_reason"]
    assert len(hook.requests) == 1  # the second delivery was dropped, not sent
    api.post("/api/v1/contacts", json={"email": "e@example.com"})
    _pass(database, clock, loopback_settings)
    assert len(hook.requests) == 1
    again = api.patch(f"/api/v1/webhooks/{made.json()['id']}", json={"active": True}).json()
    assert again["active"] is True and again["disabled_reason"] is None


def test_repeated_failures_disable_it(
    api: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    loopback_settings: Settings,
) -> None:
    made = api.post("/api/v1/webhooks", json={"url": hook.url, "events": ["contact_created"]})
    _pass(database, clock, loopback_settings)
    hook.answers = [400] * MAX_FAILURES
    for index in range(MAX_FAILURES + 1):
        api.post("/api/v1/contacts", json={"email": f"f{index}@example.com"})
    _pass(database, clock, loopback_settings)
    state = api.get(f"/api/v1/webhooks/{made.json()['id']}").json()
    assert state["active"] is False and state["failures"] == MAX_FAILURES
    assert len(hook.requests) == MAX_FAILURES


def test_bad_subscriptions_are_refused(api: TestClient) -> None:
    bad = api.post("/api/v1/webhooks", json={"url": "ftp://x", "events": ["tag_added"]})
    assert bad.status_code == 422 and "url" in bad.text
    bad = api.post("/api/v1/webhooks", json={"url": "http://x.example/", "events": ["nope"]})
    assert bad.status_code == 422 and "events[0]" in bad.text
    ok = api.post(
        "/api/v1/webhooks", json={"url": "http://x.example/", "events": ["custom:signup"]}
    )
    assert ok.status_code == 201
    assert "deal_stage_changed" in api.get("/api/v1/webhooks/events").json()["events"]
    assert api.delete(f"/api/v1/webhooks/{ok.json()['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{ok.json()['id']}").status_code == 404


def test_the_worker_delivers(
    api: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    loopback_settings: Settings,
) -> None:
    """`tidings worker` (and serve's worker) runs the webhook pass, woken by the commit."""
    api.post("/api/v1/webhooks", json={"url": hook.url, "events": ["contact_created"]})
    _pass(database, clock, loopback_settings)
    worker = Worker(database, clock, settings=loopback_settings, poll_seconds=0.1)
    worker.start()
    try:
        api.post("/api/v1/contacts", json={"email": "w@example.com"})
        deadline = time.monotonic() + 10
        while not hook.requests and time.monotonic() < deadline:
            time.sleep(0.02)  # waiting for the worker thread, not for time to pass
    finally:
        worker.stop()
    assert [json.loads(r.body)["contact"]["email"] for r in hook.requests] == ["w@example.com"]
