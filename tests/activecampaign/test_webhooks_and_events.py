"""/api/3 webhooks through the real client, delivered as ActiveCampaign delivers them
(form-encoded, PHP-style keys), and event tracking."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from activecampaign.client import Client
from fastapi.testclient import TestClient

from tests.webhooks.receiver import Receiver, receiver
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.webhooks.worker import run_webhooks


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def test_webhooks_through_the_client_are_delivered_as_forms(
    server_url: str,
    api_key: str,
    ac: TestClient,
    hook: Receiver,
    database: Database,
    clock: FakeClock,
    settings: Settings,
) -> None:
    client = Client(server_url, api_key)
    events = client.webhooks.list_all_webhook_events()["webhookEvents"]
    assert {"contact_tag_added", "deal_update", "subscribe"} <= set(events)
    assert ac.get("/webhook/events").json()["webhookEvents"] == events
    made = client.webhooks.create_a_webhook(
        {
            "webhook": {
                "name": "CRM",
                "url": hook.url,
                "events": ["contact_tag_added", "deal_update"],
                "sources": ["api", "admin"],
            }
        }
    )["webhook"]
    assert made["events"] == ["contact_tag_added", "deal_update"] and made["listid"] == "0"
    assert client.webhooks.retrieve_a_webhook(made["id"])["webhook"]["url"] == hook.url
    renamed = client.webhooks.update_a_webhook(made["id"], {"webhook": {"name": "CRM 2"}})
    assert renamed["webhook"]["name"] == "CRM 2"
    assert client.webhooks.list_all_webhooks()["meta"]["total"] == "1"
    bad = client.webhooks.create_a_webhook({"webhook": {"url": hook.url, "events": ["nope"]}})
    assert bad["errors"][0]["source"]["pointer"] == "/data/attributes/events/0"
    run_webhooks(database, clock, settings)  # the dispatcher starts at the log's end

    contact = client.contacts.create_a_contact(
        {"contact": {"email": "w@example.com", "firstName": "Wen"}}
    )["contact"]
    client.contacts.add_a_tag_to_contact({"contactTag": {"contact": contact["id"], "tag": "hot"}})
    group = ac.post("/dealGroups", json={"dealGroup": {"title": "P", "currency": "eur"}}).json()
    stages = [s["id"] for s in group["dealStages"]]
    deal = client.deals.create_a_deal(
        {"deal": {"title": "D", "contact": contact["id"], "stage": stages[0], "value": 1000}}
    )["deal"]
    client.deals.update_a_deal(deal["id"], {"deal": {"stage": stages[1]}})
    assert run_webhooks(database, clock, settings) == 2

    tagged, moved = (parse_qs(r.body.decode()) for r in hook.requests)
    assert hook.requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert tagged["type"] == ["contact_tag_added"] and tagged["tag"] == ["hot"]
    assert tagged["contact[email]"] == ["w@example.com"]
    assert tagged["contact[first_name]"] == ["Wen"]
    assert tagged["initiated_from"] == ["api"] and "date_time" in tagged
    assert moved["type"] == ["deal_update"] and moved["deal[id]"] == [deal["id"]]
    assert moved["deal[stageid]"] == [stages[1]] and moved["deal[pipelineid]"] == [
        group["dealGroup"]["id"]
    ]
    assert moved["deal[currency]"] == ["eur"] and moved["updated_fields[0]"] == ["stage"]
    assert moved["deal[contact_email]"] == ["w@example.com"]
    assert client.webhooks.delete_a_webhook(made["id"]) == {}
    assert "message" in client.webhooks.retrieve_a_webhook(made["id"])


def test_event_tracking(server_url: str, api_key: str, ac: TestClient, app: object) -> None:
    client = Client(server_url, api_key)
    assert client.events.create_an_event("signed up")["eventTrackingEvent"]["name"] == "signed_up"
    ac.post("/contacts", json={"contact": {"email": "t@example.com"}})
    root = TestClient(app)  # type: ignore[arg-type]
    form = {
        "actid": "1",
        "key": api_key,
        "event": "signed up",
        "eventdata": "plan=pro",
        "visit": '{"email": "t@example.com"}',
    }
    answer = root.post("/event", data=form)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": 1, "message": "Event spawned"}
    assert answer.headers["content-type"] == "application/json"
    assert [e["name"] for e in client.events.list_all_events()["eventTrackingEvents"]] == [
        "signed_up"
    ]
    contact_id = ac.get("/contacts", params={"email": "t@example.com"}).json()["contacts"][0]["id"]
    history = ac.get("/activities", params={"contact": contact_id}).json()["activities"]
    assert history[0]["type"] == "custom:signed_up"
    assert history[0]["data"]["properties"] == {"eventdata": "plan=pro"}
    refused = root.post("/event", data={**form, "key": "wrong"})
    assert refused.status_code == 403 and refused.json()["success"] == 0
    missing = root.post("/event", data={**form, "visit": "{}"})
    assert missing.status_code == 422 and "visit" in missing.json()["message"]
