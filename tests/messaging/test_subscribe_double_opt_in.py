"""`PUT /contacts/{id}/lists/{list_id}` on a double-opt-in list takes the opt-in path: pending
membership (and status), confirmation mail, confirmed by the signed link."""

from __future__ import annotations

import quopri
import re

from fastapi.testclient import TestClient

from tests.messaging.conftest import Sink
from tests.messaging.test_api import contact, form_token, send_all
from tidings.clock import FakeClock
from tidings.db.engine import Database


def _list(client: TestClient, name: str, double_opt_in: bool) -> int:
    created = client.post("/api/v1/lists", json={"name": name, "double_opt_in": double_opt_in})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _memberships(client: TestClient, contact_id: int) -> dict[str, str]:
    person = client.get(f"/api/v1/contacts/{contact_id}").json()
    return {m["list"]: m["status"] for m in person["lists"]}


def test_put_on_a_double_opt_in_list_sends_the_confirmation(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    weekly = _list(client, "Weekly", True)
    plain = _list(client, "Plain", False)
    cid = contact(client, "ann@example.com", status="transactional")
    put = client.put(f"/api/v1/contacts/{cid}/lists/{weekly}")
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "pending"
    assert _memberships(client, cid) == {"Weekly": "pending"}
    again = client.put(f"/api/v1/contacts/{cid}/lists/{plain}")  # no opt-in: active at once
    assert again.status_code == 200 and _memberships(client, cid)["Plain"] == "active"
    send_all(database, clock, sink)
    assert sink.handler.count_by_recipient() == {"ann@example.com": 1}
    decoded = quopri.decodestring(sink.handler.messages[0].data).decode()
    assert "confirm your subscription" in decoded
    confirm = re.search(r"http://testserver(/confirm/[A-Za-z0-9_.\-]+)", decoded)
    assert confirm is not None
    public = TestClient(client.app)
    page = public.get(confirm.group(1))
    assert page.status_code == 200
    assert client.get(f"/api/v1/contacts/{cid}").json()["status"] == "pending"  # a page only
    assert public.post(confirm.group(1), data={"csrf": form_token(page.text)}).status_code == 200
    assert client.get(f"/api/v1/contacts/{cid}").json()["status"] == "subscribed"
    assert _memberships(client, cid) == {"Weekly": "active", "Plain": "active"}
    # already active: nothing more is sent
    assert client.put(f"/api/v1/contacts/{cid}/lists/{weekly}").status_code == 200
    send_all(database, clock, sink)
    assert len(sink.handler.messages) == 1


def test_subscribed_contact_keeps_its_status_and_unsubscribed_needs_force(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    weekly = _list(client, "Weekly", True)
    subscribed = contact(client, "bob@example.com", status="subscribed")
    put = client.put(f"/api/v1/contacts/{subscribed}/lists/{weekly}")
    assert put.status_code == 200 and put.json()["status"] == "subscribed"
    assert _memberships(client, subscribed) == {"Weekly": "pending"}
    gone = contact(client, "cat@example.com", status="unsubscribed")
    refused = client.put(f"/api/v1/contacts/{gone}/lists/{weekly}")
    assert refused.status_code == 409, refused.text
    forced = client.put(f"/api/v1/contacts/{gone}/lists/{weekly}", json={"force_resubscribe": True})
    assert forced.status_code == 200 and forced.json()["status"] == "pending"
    send_all(database, clock, sink)
    assert sink.handler.count_by_recipient() == {"bob@example.com": 1, "cat@example.com": 1}
