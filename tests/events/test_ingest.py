"""Event ingest through the API: single, batch (JSON and NDJSON), idempotency, rejected rows,
the engagement summary on the contact, the timeline, daily aggregates and pruning."""

from __future__ import annotations

from datetime import timedelta

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.events.models import EventDaily
from tidings.events.service import prune_events

PROBLEM = "application/problem+json"


def _contact(client: TestClient, email: str = "ann@example.com") -> int:
    response = client.post("/api/v1/contacts", json={"email": email})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _iso(clock: FakeClock, **delta: float) -> str:
    return (clock.now() + timedelta(**delta)).isoformat()


def test_single_event_shows_on_contact_and_timeline(client: TestClient, clock: FakeClock) -> None:
    cid = _contact(client)
    response = client.post(
        "/api/v1/events",
        json={
            "type": "purchase",
            "contact_id": cid,
            "amount": 19.99,
            "currency": "eur",
            "order_id": "o-1",
            "occurred_at": _iso(clock, hours=-1),
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 1
    engagement = client.get(f"/api/v1/contacts/{cid}").json()["engagement"]
    assert engagement["purchases"] == 1
    assert engagement["purchase_total"] == 19.99 and engagement["purchase_total_minor"] == 1999
    assert engagement["last_purchase_at"] == engagement["last_engaged_at"]
    assert engagement["last_open_at"] is None

    items = client.get(f"/api/v1/contacts/{cid}/timeline").json()["items"]
    assert [i["type"] for i in items] == ["contact_created", "purchase"]
    purchase = items[1]
    assert purchase["data"]["currency"] == "EUR" and purchase["cause"] == "api"


def test_single_invalid_event_is_422_naming_the_key(client: TestClient) -> None:
    cid = _contact(client)
    response = client.post("/api/v1/events", json={"type": "opened", "contact_id": cid})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"].startswith("type: unknown event type 'opened'")
    response = client.post("/api/v1/events", content=b"{nope")
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]


def test_batch_stores_valid_rows_and_names_each_rejection(
    client: TestClient, clock: FakeClock, database: Database
) -> None:
    cid = _contact(client)
    events = [
        {"type": "email_opened", "contact_id": cid, "message_id": "m1"},
        {"type": "teleported", "contact_id": cid},
        {"type": "email_opened", "contact_id": 999999},
        {"type": "link_clicked", "email": "nobody@example.com", "url": "https://x.test"},
        {"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=400)},
        {
            "type": "custom",
            "name": "big",
            "contact_id": cid,
            "properties": {"blob": "x" * 1_100_000},
        },
        {"type": "link_clicked", "contact_id": cid},
        {
            "type": "custom",
            "name": "trial_started",
            "contact_id": cid,
            "properties": {"plan": "pro"},
        },
        {"type": "form_submitted", "email": "ANN@example.com", "form": "contact-us"},
        "not an object",
        {"type": "email_opened", "contact_id": 2**70},
    ]
    response = client.post("/api/v1/events/batch", json=events)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 3
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 9, 10]
    assert reasons[10] == "contact_id: must be a positive integer"
    assert reasons[1].startswith("type: unknown event type")
    assert reasons[2] == "contact_id: contact 999999 does not exist"
    assert reasons[3].startswith("email: no contact with address nobody@example.com")
    assert reasons[4] == "occurred_at: more than 24 hours in the future"
    assert reasons[5].startswith("properties: ") and "more than 65536" in reasons[5]
    assert reasons[6] == "url: required"
    assert reasons[9] == "event: must be a JSON object"
    with database.session() as session:
        types = sorted(
            session.scalars(select(Activity.type).where(Activity.type != "contact_created"))
        )
    assert types == ["custom:trial_started", "email_opened", "form_submitted"]


def test_ndjson_batch_with_a_malformed_line(client: TestClient) -> None:
    cid = _contact(client)
    lines = [
        orjson.dumps({"type": "email_opened", "contact_id": cid}),
        b"{broken",
        b"",
        orjson.dumps({"type": "site_visit", "contact_id": cid, "url": "https://shop.test/"}),
    ]
    response = client.post(
        "/api/v1/events/batch",
        content=b"\n".join(lines),
        headers={"Content-Type": "application/x-ndjson"},
    )
    body = response.json()
    assert body["stored"] == 2
    assert len(body["rejected"]) == 1
    assert body["rejected"][0]["index"] == 1 and body["rejected"][0]["reason"].startswith(
        "line 2: not valid JSON"
    )


def test_event_id_makes_sending_twice_store_once(client: TestClient, database: Database) -> None:
    cid = _contact(client)
    event = {"type": "email_opened", "contact_id": cid, "event_id": "open-1"}
    first = client.post("/api/v1/events/batch", json=[event, event]).json()
    assert first["stored"] == 1 and first["duplicates"] == 1
    again = client.post("/api/v1/events", json=event).json()
    assert again["stored"] == 0 and again["duplicates"] == 1
    assert client.get(f"/api/v1/contacts/{cid}").json()["engagement"]["opens"] == 1
    mixed = [event, {**event, "event_id": "open-2"}, {"type": "email_opened", "contact_id": cid}]
    result = client.post("/api/v1/events/batch", json=mixed).json()
    assert (result["stored"], result["duplicates"]) == (2, 1)
    assert client.get(f"/api/v1/contacts/{cid}").json()["engagement"]["opens"] == 3


def test_create_contacts_only_when_asked(client: TestClient) -> None:
    event = {"type": "purchase", "email": "New@Example.com", "amount": 5}
    refused = client.post("/api/v1/events/batch", json=[event]).json()
    assert refused["stored"] == 0 and len(refused["rejected"]) == 1
    created = client.post("/api/v1/events/batch?create_contacts=true", json=[event]).json()
    assert created["stored"] == 1 and created["created_contacts"] == 1
    found = client.get("/api/v1/contacts", params={"email": "new@example.com"}).json()["items"]
    assert found[0]["status"] == "transactional"


def test_summary_takes_latest_and_ignores_machine_opens(
    client: TestClient, clock: FakeClock
) -> None:
    cid = _contact(client)
    events = [
        {"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=-1)},
        {"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=-3)},
        {
            "type": "email_opened",
            "contact_id": cid,
            "occurred_at": _iso(clock, hours=-1),
            "machine": True,
        },
        {
            "type": "link_clicked",
            "contact_id": cid,
            "url": "https://x.test",
            "occurred_at": _iso(clock, days=-2),
        },
    ]
    client.post("/api/v1/events/batch", json=events)
    # An older event arriving later never moves a last-timestamp back.
    client.post(
        "/api/v1/events",
        json={"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=-5)},
    )
    engagement = client.get(f"/api/v1/contacts/{cid}").json()["engagement"]
    assert engagement["opens"] == 3 and engagement["clicks"] == 1
    assert engagement["last_open_at"].startswith(_iso(clock, days=-1)[:19])
    assert engagement["last_engaged_at"] == engagement["last_open_at"]
    assert engagement["last_click_at"].startswith(_iso(clock, days=-2)[:19])


def test_timeline_is_paginated_newest_first(client: TestClient, clock: FakeClock) -> None:
    cid = _contact(client)
    client.post(
        "/api/v1/events/batch",
        json=[
            {"type": "email_sent", "contact_id": cid, "occurred_at": _iso(clock, minutes=-i)}
            for i in range(1, 6)
        ],
    )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/v1/contacts/{cid}/timeline", params=params).json()
        seen.extend(i["occurred_at"] for i in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 6 and seen == sorted(seen, reverse=True)
    assert client.get("/api/v1/contacts/999/timeline").status_code == 404
    assert (
        client.get(f"/api/v1/contacts/{cid}/timeline", params={"cursor": "zzz"}).status_code == 422
    )


def test_prune_keeps_summary_and_daily_aggregates(
    client: TestClient, clock: FakeClock, database: Database
) -> None:
    cid = _contact(client)
    client.post(
        "/api/v1/events/batch",
        json=[
            {"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=-100)},
            {
                "type": "purchase",
                "contact_id": cid,
                "amount": 10,
                "occurred_at": _iso(clock, days=-100),
            },
            {"type": "email_opened", "contact_id": cid, "occurred_at": _iso(clock, days=-1)},
        ],
    )
    before = client.get(f"/api/v1/contacts/{cid}").json()["engagement"]
    with database.session() as session:
        daily_before = session.execute(
            select(EventDaily.type, func.sum(EventDaily.events))
            .group_by(EventDaily.type)
            .order_by(EventDaily.type)
        ).all()
        assert prune_events(session, clock.now() - timedelta(days=30)) == 2
    with database.session() as session:
        remaining = session.scalars(select(Activity.type).order_by(Activity.id)).all()
        daily_after = session.execute(
            select(EventDaily.type, func.sum(EventDaily.events))
            .group_by(EventDaily.type)
            .order_by(EventDaily.type)
        ).all()
    assert remaining == ["contact_created", "email_opened"]
    assert daily_before == daily_after == [("email_opened", 2), ("purchase", 1)]
    assert client.get(f"/api/v1/contacts/{cid}").json()["engagement"] == before
    day = (clock.now() - timedelta(days=100)).date().isoformat()
    rows = client.get("/api/v1/events/daily", params={"since": day, "until": day}).json()
    assert rows == [
        {"day": day, "type": "email_opened", "events": 1, "machine_events": 0, "amount_minor": 0},
        {"day": day, "type": "purchase", "events": 1, "machine_events": 0, "amount_minor": 1000},
    ]
    only = client.get("/api/v1/events/daily", params=[("type", "purchase")]).json()
    assert [r["type"] for r in only] == ["purchase"]


def test_batch_limits_and_shapes(client: TestClient) -> None:
    too_many = b"\n".join(b'{"type":"email_sent","contact_id":1}' for _ in range(50_001))
    response = client.post(
        "/api/v1/events/batch", content=too_many, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 422 and "at most 50000" in response.json()["detail"]
    for body in (b'{"events": 5}', b"[1, 2", b'"text"'):
        bad = client.post(
            "/api/v1/events/batch", content=body, headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    cid = _contact(client)
    wrapped = client.post(
        "/api/v1/events/batch", json={"events": [{"type": "email_sent", "contact_id": cid}]}
    )
    assert wrapped.json()["stored"] == 1
