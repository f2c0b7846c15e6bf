"""The email API and the public pages, end to end over HTTP (TestClient)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.messaging.conftest import Sink, sender_options
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.db.engine import Database
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sender import Sender

TEMPLATE = {
    "name": "news",
    "subject": "News for {{ contact.first_name | default('you') }}",
    "html": '<p>Hi {{ contact.first_name | default("there") }}, {{ headline }}</p>'
    '<a href="{{ unsubscribe_url }}">unsubscribe</a>',
    "variables": {"headline": "Big sale"},
}


def contact(client: TestClient, email: str, **kw: Any) -> int:
    response = client.post("/api/v1/contacts", json={"email": email, **kw})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def form_token(page: str) -> str:
    """The CSRF token of the (first) form on a public page."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def template(client: TestClient, **kw: Any) -> int:
    response = client.post("/api/v1/templates", json={**TEMPLATE, **kw})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def send_all(database: Database, clock: FakeClock, sink: Sink) -> None:
    async def main() -> None:
        sender = Sender(database, clock, sender_options(sink.port, base_url="http://testserver"))
        try:
            await sender.run_once()
        finally:
            await sender.close()

    asyncio.run(main())


def test_template_validation_errors_are_422_with_line(client: TestClient) -> None:
    bad = client.post("/api/v1/templates", json={**TEMPLATE, "html": "ok\n{{ ''.__class__ }}"})
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["errors"][0]["field"] == "html" and problem["errors"][0]["line"] == 2
    syntax = client.post("/api/v1/templates", json={**TEMPLATE, "subject": "{% for %}"})
    assert syntax.status_code == 422 and "subject" in syntax.json()["detail"]
    unknown = client.post("/api/v1/templates", json={**TEMPLATE, "html": "{{ promo }}"})
    assert unknown.status_code == 422 and "promo" in unknown.json()["detail"]
    template_id = template(client)
    assert client.post("/api/v1/templates", json=TEMPLATE).status_code == 409
    patched = client.patch(f"/api/v1/templates/{template_id}", json={"html": "{{ nope }}"})
    assert patched.status_code == 422
    ok = client.patch(f"/api/v1/templates/{template_id}", json={"subject": "Hi"})
    assert ok.status_code == 200 and ok.json()["subject"] == "Hi"


def test_preview_for_a_contact(client: TestClient) -> None:
    template_id = template(client)
    ann = contact(client, "ann@example.com", first_name="Ann")
    bob = contact(client, "bob@example.com")
    out = client.post(f"/api/v1/templates/{template_id}/preview", json={"contact_id": ann}).json()
    assert out["subject"] == "News for Ann"
    assert "Hi Ann, Big sale" in out["html"] and "http://testserver/u/" in out["html"]
    out = client.post(
        f"/api/v1/templates/{template_id}/preview",
        json={"contact_id": bob, "data": {"headline": "<b>New</b>"}},
    ).json()
    assert "Hi there, &lt;b&gt;New&lt;/b&gt;" in out["html"]
    bad = client.post(
        f"/api/v1/templates/{template_id}/preview", json={"contact_id": bob, "data": {"x": 1}}
    )
    assert bad.status_code == 422
    assert (
        client.post(
            f"/api/v1/templates/{template_id}/preview", json={"contact_id": 999}
        ).status_code
        == 404
    )


def test_transactional_and_refusal_visible(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    template(client)
    ann = contact(client, "ann@example.com", status="unsubscribed")
    gone = contact(client, "gone@example.com", status="bounced")
    ok = client.post(
        "/api/v1/messages/transactional",
        json={
            "template": "news",
            "email": "ann@example.com",
            "data": {"headline": "Receipt"},
            "idempotency_key": "order-1",
        },
    )
    assert ok.status_code == 202 and ok.json()["queued"] is True
    again = client.post(
        "/api/v1/messages/transactional",
        json={"template": "news", "contact_id": ann, "idempotency_key": "order-1"},
    )
    assert again.json()["duplicate"] is True
    refused = client.post(
        "/api/v1/messages/transactional", json={"template": "news", "contact_id": gone}
    )
    assert refused.status_code == 202 and refused.json()["queued"] is False
    assert "bounced" in refused.json()["reason"]
    assert (
        client.post(
            "/api/v1/messages/transactional", json={"template": "x", "contact_id": ann}
        ).status_code
        == 404
    )
    per_contact = client.get(f"/api/v1/messages?contact_id={gone}").json()["items"]
    assert per_contact[0]["status"] == "refused" and "bounced" in per_contact[0]["reason"]
    history = client.get(f"/api/v1/contacts/{gone}/activities").json()["items"]
    assert any(a["type"] == "email_refused" for a in history)
    send_all(database, clock, sink)
    assert sink.handler.count_by_recipient() == {"ann@example.com": 1}
    message = client.get(f"/api/v1/messages/{ok.json()['outbox_id']}").json()
    assert message["status"] == "sent"


def test_broadcast_to_list_and_segment_with_stats(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    template_id = template(client)
    contact(client, "a@example.com", lists=["Newsletter"], tags=["VIP"])
    contact(client, "b@example.com", lists=["Newsletter"])
    contact(client, "c@example.com", lists=["Newsletter"], status="unsubscribed")
    contact(client, "d@blocked.example", lists=["Newsletter"])
    contact(client, "e@example.com", tags=["VIP"])
    assert (
        client.post("/api/v1/suppressions", json={"value": "@blocked.example"}).status_code == 201
    )
    list_id = (
        client.get("/api/v1/lists").json()["items"][0]["id"]
        if isinstance(client.get("/api/v1/lists").json(), dict)
        else client.get("/api/v1/lists").json()[0]["id"]
    )
    created = client.post(
        "/api/v1/broadcasts", json={"name": "March", "template_id": template_id, "list_id": list_id}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "sending" and body["recipients"] == 4
    assert body["stats"]["queued"] == 2 and body["stats"]["refused"] == 2
    refused = client.get(f"/api/v1/messages?broadcast_id={body['id']}&status=refused").json()[
        "items"
    ]
    assert sorted(r["reason"].split(":")[0] for r in refused) == [
        "status unsubscribed does not allow campaign mail",
        "suppressed",
    ]
    # again from the same list is a new broadcast; the same broadcast is never queued twice
    send_all(database, clock, sink)
    stats = client.get(f"/api/v1/broadcasts/{body['id']}").json()
    assert stats["status"] == "sent" and stats["stats"]["sent"] == 2
    assert sink.handler.count_by_recipient() == {"a@example.com": 1, "b@example.com": 1}
    # a segment, scheduled for later
    later = (clock.now() + timedelta(hours=1)).isoformat()
    seg = client.post(
        "/api/v1/broadcasts",
        json={
            "name": "VIP",
            "template_id": template_id,
            "segment": {"has_tag": "VIP"},
            "scheduled_at": later,
        },
    ).json()
    assert seg["status"] == "scheduled" and seg["recipients"] == 0
    send_all(database, clock, sink)
    assert client.get(f"/api/v1/broadcasts/{seg['id']}").json()["status"] == "scheduled"
    clock.advance(hours=1)
    send_all(database, clock, sink)
    seg = client.get(f"/api/v1/broadcasts/{seg['id']}").json()
    assert seg["status"] == "sent" and seg["stats"]["sent"] == 2
    bad = client.post(
        "/api/v1/broadcasts",
        json={"name": "x", "template_id": template_id, "segment": {"bogus": 1}},
    )
    assert bad.status_code == 422
    both = client.post("/api/v1/broadcasts", json={"name": "x", "template_id": template_id})
    assert both.status_code == 422


def test_a_scheduled_at_without_timezone_is_422(client: TestClient) -> None:
    template_id = template(client)
    list_id = client.post("/api/v1/lists", json={"name": "News"}).json()["id"]
    body = {"name": "B", "template_id": template_id, "list_id": list_id}
    naive = client.post("/api/v1/broadcasts", json={**body, "scheduled_at": "2026-04-01T09:00"})
    assert naive.status_code == 422, naive.text
    assert naive.json()["errors"][0]["field"] == "scheduled_at"
    aware = client.post(
        "/api/v1/broadcasts", json={**body, "scheduled_at": "2026-04-01T09:00:00+02:00"}
    )
    assert aware.status_code == 201
    scheduled = datetime.fromisoformat(aware.json()["scheduled_at"])
    assert scheduled == datetime(2026, 4, 1, 7, tzinfo=UTC)


def test_one_click_unsubscribe_and_preferences(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    template_id = template(client)
    ann = contact(client, "ann@example.com", lists=["News", "Deals"])
    list_ids = {item["name"]: item["id"] for item in _lists(client)}
    client.post(
        "/api/v1/broadcasts",
        json={"name": "B", "template_id": template_id, "list_id": list_ids["News"]},
    )
    send_all(database, clock, sink)
    raw = sink.handler.messages[0].data.decode()
    url = re.search(r"List-Unsubscribe: <(http://testserver/u/[^>]+)>", raw)
    assert url is not None
    path = url.group(1).removeprefix("http://testserver")
    page = client.get(path)
    assert page.status_code == 200 and "ann@example.com" in page.text
    assert (
        client.get(f"/api/v1/contacts/{ann}").json()["status"] == "subscribed"
    )  # GET changes nothing
    public = TestClient(client.app)  # no API key: the link alone is enough
    done = public.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert client.get(f"/api/v1/contacts/{ann}").json()["status"] == "unsubscribed"
    messages = client.get(f"/api/v1/messages?contact_id={ann}").json()["items"]
    assert messages[0]["status"] == "unsubscribed"
    assert (
        public.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )
    history = [a["type"] for a in client.get(f"/api/v1/contacts/{ann}/activities").json()["items"]]
    assert history.count("email_unsubscribed") == 1
    assert public.post("/u/forged-token").status_code == 404
    # the preference page: resubscribe, then leave one list (each form posts its token)
    links = LinkSigner("test-secret-key", "http://testserver")
    prefs = links.preferences_url(ann).removeprefix("http://testserver")
    page = public.get(prefs).text
    assert "Subscribe again" in page
    resubscribed = public.post(prefs, data={"action": "resubscribe", "csrf": form_token(page)})
    assert resubscribed.status_code == 200
    assert client.get(f"/api/v1/contacts/{ann}").json()["status"] == "subscribed"
    public.post(
        prefs,
        data={
            "action": "save",
            "lists": [str(list_ids["Deals"])],
            "csrf": form_token(resubscribed.text),
        },
    )
    memberships = {
        m["list"]: m["status"] for m in client.get(f"/api/v1/contacts/{ann}").json()["lists"]
    }
    assert memberships == {"Deals": "active", "News": "unsubscribed"}


def _lists(client: TestClient) -> list[dict[str, Any]]:
    body = client.get("/api/v1/lists").json()
    return body["items"] if isinstance(body, dict) else body


def test_links_of_a_deleted_contact_or_list_never_reach_a_new_one(client: TestClient) -> None:
    """SQLite handed the id of a deleted contact (the newest) to the next contact: its old
    unsubscribe and preference links then showed, and could unsubscribe, the new person."""
    links = LinkSigner("test-secret-key", "http://testserver")
    contact(client, "first@example.com")
    old = contact(client, "old@example.com", lists=["Old list"])
    old_list = _lists(client)[0]["id"]
    unsubscribe = links.unsubscribe_url(old, None, old_list).removeprefix("http://testserver")
    preferences = links.preferences_url(old).removeprefix("http://testserver")
    assert "old@example.com" in client.get(unsubscribe).text
    assert client.delete(f"/api/v1/contacts/{old}").status_code == 204
    assert client.delete(f"/api/v1/lists/{old_list}").status_code == 204
    new = contact(client, "new@example.com", lists=["New list"])
    assert new > old and _lists(client)[0]["id"] > old_list
    for path in (unsubscribe, preferences):
        page = client.get(path)
        assert page.status_code == 404 and "new@example.com" not in page.text
    assert client.post(unsubscribe).status_code == 404
    assert client.get(f"/api/v1/contacts/{new}").json()["status"] == "subscribed"
    bulk = client.post("/api/v1/contacts/bulk", json={"contacts": [{"email": "b@example.com"}]})
    assert bulk.status_code == 200
    ids = [c["id"] for c in client.get("/api/v1/contacts").json()["items"]]
    assert ids == sorted(ids) and ids[-1] == new + 1  # the bulk path numbers them right too


def test_double_opt_in(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    created = client.post("/api/v1/lists", json={"name": "Weekly", "double_opt_in": True})
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    out = client.post("/api/v1/opt-ins", json={"email": "New@Example.com", "list_id": list_id})
    assert out.status_code == 202, out.text
    body = out.json()
    assert body["status"] == "pending" and body["confirmation"]["queued"] is True
    # pending: campaign mail is refused, the confirmation goes out
    template_id = template(client)
    client.post(
        "/api/v1/broadcasts", json={"name": "B", "template_id": template_id, "list_id": list_id}
    )
    send_all(database, clock, sink)
    assert sink.handler.count_by_recipient() == {"new@example.com": 1}
    raw = sink.handler.messages[0].data.decode()
    assert "confirm your subscription" in raw
    assert "List-Unsubscribe" not in raw
    import quopri

    decoded = quopri.decodestring(raw.encode()).decode()
    confirm = re.search(r"http://testserver(/confirm/[A-Za-z0-9_.\-]+)", decoded)
    assert confirm is not None
    public = TestClient(client.app)
    # expired after the configured 72 hours
    clock.advance(hours=73)
    assert public.get(confirm.group(1)).status_code == 422
    clock.advance(hours=-72)
    page = public.get(confirm.group(1))  # a page with a button; opening it changes nothing
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert client.get(f"/api/v1/contacts/{body['contact_id']}").json()["status"] == "pending"
    done = public.post(confirm.group(1), data={"csrf": form_token(page.text)})
    assert done.status_code == 200 and "is subscribed" in done.text
    person = client.get(f"/api/v1/contacts/{body['contact_id']}").json()
    assert person["status"] == "subscribed"
    assert {m["list"]: m["status"] for m in person["lists"]} == {"Weekly": "active"}
    with database.session() as session:
        types = session.scalars(
            select(Activity.type).where(Activity.contact_id == body["contact_id"])
        ).all()
    assert "opt_in_confirmed" in types and "status_changed" in types


__all__ = ["Contact", "ListMembership", "MailingList", "OutboxMessage"]


def test_cancel_a_broadcast_and_delete_a_template(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    template_id = template(client)
    contact(client, "a@example.com", lists=["L"])
    list_id = _lists(client)[0]["id"]
    later = (clock.now() + timedelta(days=1)).isoformat()
    scheduled = client.post(
        "/api/v1/broadcasts",
        json={
            "name": "later",
            "template_id": template_id,
            "list_id": list_id,
            "scheduled_at": later,
        },
    ).json()
    now = client.post(
        "/api/v1/broadcasts", json={"name": "now", "template_id": template_id, "list_id": list_id}
    ).json()
    cancelled = client.post(f"/api/v1/broadcasts/{now['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["stats"]["refused"] == 1
    assert (
        client.post(f"/api/v1/broadcasts/{scheduled['id']}/cancel").json()["status"] == "cancelled"
    )
    assert client.post(f"/api/v1/broadcasts/{now['id']}/cancel").status_code == 409
    clock.advance(days=2)
    send_all(database, clock, sink)
    assert sink.handler.messages == []
    assert client.delete(f"/api/v1/templates/{template_id}").status_code == 409
    other = template(client, name="other")
    assert client.delete(f"/api/v1/templates/{other}").status_code == 204
    assert client.get(f"/api/v1/templates/{other}").status_code == 404
