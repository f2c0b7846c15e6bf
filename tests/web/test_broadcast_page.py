"""A broadcast's page and its report (the same numbers at GET /api/v1/broadcasts/{id}/report):
totals, the chart's series per hour, clicks per link, refusals by reason; send now and cancel;
404 for an unknown broadcast; a member may look."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.messaging.helpers import make_contact, make_template
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import ListMembership, MailingList
from tidings.db.engine import Database
from tidings.events.tokens import TrackingTokens
from tidings.messaging.bounce_parse import BounceReport
from tidings.messaging.bounce_rules import BounceKind
from tidings.messaging.bounces import apply_report
from tidings.messaging.broadcasts import create_broadcast, queue_broadcast
from tidings.messaging.links import UnsubscribeTarget
from tidings.messaging.models import Broadcast, OutboxMessage
from tidings.messaging.subscriptions import unsubscribe

from .conftest import csrf_of

SALE = "https://shop.example.com/sale"
NEWS = "https://shop.example.com/news"
PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"]
PERSON = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}


def _broadcast(
    database: Database, clock: FakeClock, *, scheduled: bool = False, tag: str = ""
) -> int:
    """Eight people on a list: gus unsubscribed and hal suppressed (both refused)."""
    now = clock.now()
    with database.session() as session:
        template = make_template(
            session,
            now,
            name=f"spring{tag}",
            html=f'<p><a href="{SALE}">Sale</a> <a href="{NEWS}">News</a></p>',
        )
        mailing_list = MailingList(name=f"News{tag}", double_opt_in=False, created_at=now)
        session.add(mailing_list)
        session.flush()
        for name in PEOPLE:
            status = "unsubscribed" if name == "gus" else "subscribed"
            contact = make_contact(session, f"{name}{tag}@example.org", now, status=status)
            session.add(
                ListMembership(
                    contact_id=contact.id,
                    list_id=mailing_list.id,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        contacts.add_suppression(session, f"hal{tag}@example.org", now=now, reason="asked by phone")
        broadcast = create_broadcast(
            session,
            name="Spring sale",
            template_id=template.id,
            list_id=mailing_list.id,
            segment=None,
            scheduled_at=now + timedelta(days=1) if scheduled else None,
            now=now,
        )
        if not scheduled:
            queue_broadcast(session, broadcast, now=now)
        return broadcast.id


def _tokens(database: Database, broadcast_id: int) -> dict[str, tuple[int, str]]:
    """Per person, (contact id, message token) of the messages queued."""
    with database.session() as session:
        rows = session.execute(
            select(OutboxMessage.recipient, OutboxMessage.contact_id, OutboxMessage.message_id)
            .where(OutboxMessage.broadcast_id == broadcast_id)
            .where(OutboxMessage.status == "queued")
        )
        return {str(r).partition("@")[0]: (int(c), str(t)) for r, c, t in rows}


def _engage(
    client: TestClient, database: Database, clock: FakeClock, settings: Settings, id_: int
) -> None:
    """All delivered at 09:10; opens and clicks at 10:10; a bounce at 11:10, a complaint at
    12:10, an unsubscribe at 13:10 (hours 0 to 4 of the broadcast queued at 09:00)."""
    messages = _tokens(database, id_)
    clock.advance(minutes=10)
    with database.session() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.broadcast_id == id_, OutboxMessage.status == "queued")
            .values(status="sent", sent_at=clock.now(), updated_at=clock.now())
        )
    tokens = TrackingTokens.from_settings(settings, database, clock)

    def click(name: str, url: str) -> str:
        contact, token = messages[name]
        return "/t/c/" + tokens.click_token(contact, url, token)

    def pixel(name: str) -> str:
        return f"/t/o/{tokens.open_token(*messages[name])}.gif"

    # The links as in the messages, followed an hour later (a person, not a scanner at once).
    clicks = [click("bob", SALE), click("bob", SALE), click("bob", NEWS), click("cat", SALE)]
    ann, dan, scanned = pixel("ann"), pixel("dan"), click("dan", NEWS)
    clock.advance(hours=1)
    public = TestClient(client.app, follow_redirects=False, headers=PERSON)
    assert public.get(ann).status_code == 200
    proxy = TestClient(client.app, follow_redirects=False, headers={"User-Agent": "Mozilla/5.0"})
    assert proxy.get(dan).status_code == 200  # a privacy proxy: not an open
    assert proxy.get(scanned).status_code == 302  # nor a click
    assert all(public.get(url).status_code == 302 for url in clicks)
    client.app.state.tracking.flush()  # type: ignore[attr-defined]
    for kind, name in ((BounceKind.HARD, "dan"), (BounceKind.COMPLAINT, "eve")):
        clock.advance(hours=1)
        with database.session() as session:
            report = BounceReport(kind, status="5.1.1", diagnostic="no", token=messages[name][1])
            assert apply_report(session, report, now=clock.now()).matched
    clock.advance(hours=1)
    with database.session() as session:
        fay, fay_token = messages["fay"]
        unsubscribe(session, UnsubscribeTarget(fay, fay_token, None), now=clock.now(), how="link")


def _chart(page: str) -> dict[str, Any]:
    match = re.search(r"id=\"broadcast-chart\"[^>]*data-chart='([^']+)'", page)
    assert match, page
    return json.loads(html.unescape(match.group(1)))  # type: ignore[no-any-return]


def _total(page: str, key: str) -> str:
    match = re.search(
        rf'<tr data-total="{key}"><th scope="row">[^<]+</th><td class="num">([^<]+)<', page
    )
    assert match, key
    return match.group(1)


def test_a_sent_broadcast_with_its_engagement(
    admin_client: TestClient,
    client: TestClient,
    database: Database,
    clock: FakeClock,
    settings: Settings,
) -> None:
    broadcast_id = _broadcast(database, clock)
    _engage(client, database, clock, settings, broadcast_id)

    report = client.get(f"/api/v1/broadcasts/{broadcast_id}/report").json()
    assert report["totals"] == {
        "recipients": 8,
        "delivered": 6,
        "opened": 3,  # ann; bob and cat clicked; dan's proxy open is no open
        "clicked": 2,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 1,
        "refused": 2,
        "failed": 0,
        "pending": 0,
    }
    assert report["rates"]["opened"] == 0.5 and report["rates"]["delivered"] == 0.75
    timeline = report["timeline"]
    assert timeline["bucket"] == "hour" and len(timeline["starts"]) == 5
    assert timeline["series"] == {
        "delivered": [6, 0, 0, 0, 0],
        "opened": [0, 3, 0, 0, 0],
        "clicked": [0, 2, 0, 0, 0],
        "bounced": [0, 0, 1, 0, 0],
        "complained": [0, 0, 0, 1, 0],
        "unsubscribed": [0, 0, 0, 0, 1],
    }
    assert report["links"] == [
        {"url": SALE, "clickers": 2, "clicks": 3, "machine_clicks": 0},
        {"url": NEWS, "clickers": 1, "clicks": 1, "machine_clicks": 1},
    ]
    refusals = {r["reason"]: r for r in report["refusals"]}
    assert len(refusals) == 2 and all(r["count"] == 1 for r in refusals.values())
    emails = sorted(r["recipients"][0]["email"] for r in refusals.values())
    assert emails == ["gus@example.org", "hal@example.org"]

    page = admin_client.get(f"/admin/email/broadcasts/{broadcast_id}")
    assert page.status_code == 200
    text = page.text
    assert "Spring sale" in text and "the list News" in text
    assert [_total(text, k) for k in ("delivered", "opened", "clicked", "refused")] == [
        "6",
        "3",
        "2",
        "2",
    ]
    assert "50.0%" in text  # opened of delivered
    chart = _chart(text)
    assert chart["data"]["labels"] == [
        "03-02 09:00",
        "03-02 10:00",
        "03-02 11:00",
        "03-02 12:00",
        "03-02 13:00",
    ]
    series = {d["label"]: d["data"] for d in chart["data"]["datasets"]}
    assert series["Opened"] == [0, 3, 0, 0, 0] and series["Unsubscribed"] == [0, 0, 0, 0, 1]
    assert 'id="timeline-table"' in text  # the chart's data as a table
    links = text[text.index('id="links"') :]
    assert links.index(SALE) < links.index(NEWS)
    for reason in refusals:
        assert html.escape(reason) in text
    assert re.search(r'href="/admin/contacts/\d+">gus@example.org', text)
    assert "Send now" not in text  # sent: no action left

    listing = admin_client.get("/admin/email").text
    assert f'href="/admin/email/broadcasts/{broadcast_id}"' in listing


def test_send_now_and_cancel_a_scheduled_broadcast(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    later = _broadcast(database, clock, scheduled=True)
    token = csrf_of(admin_client, f"/admin/email/broadcasts/{later}")
    page = admin_client.get(f"/admin/email/broadcasts/{later}").text
    assert "Send now" in page and "scheduled" in page and "Nothing sent yet" in page
    sent = admin_client.post(f"/admin/email/broadcasts/{later}/send", data={"csrf_token": token})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/admin/email/broadcasts/{later}"
    page = admin_client.get(f"/admin/email/broadcasts/{later}").text
    assert _total(page, "pending") == "6" and "Stop sending" in page
    again = admin_client.post(f"/admin/email/broadcasts/{later}/send", data={"csrf_token": token})
    assert again.status_code == 409

    other = _broadcast(database, clock, scheduled=True, tag="2")
    cancelled = admin_client.post(
        f"/admin/email/broadcasts/{other}/cancel", data={"csrf_token": token}
    )
    assert cancelled.status_code == 303
    with database.session() as session:
        assert session.get(Broadcast, other).status == "cancelled"  # type: ignore[union-attr]
    assert "Send now" not in admin_client.get(f"/admin/email/broadcasts/{other}").text
    forged = admin_client.post(f"/admin/email/broadcasts/{other}/send", data={})
    assert forged.status_code == 403


def test_an_unknown_broadcast_is_404_and_a_member_may_look(
    member_client: TestClient, client: TestClient, database: Database, clock: FakeClock
) -> None:
    assert member_client.get("/admin/email/broadcasts/999999").status_code == 404
    assert client.get("/api/v1/broadcasts/999999/report").status_code == 404
    broadcast_id = _broadcast(database, clock)
    page = member_client.get(f"/admin/email/broadcasts/{broadcast_id}")
    assert page.status_code == 200 and _total(page.text, "pending") == "6"


def test_a_broadcast_to_a_segment_shows_its_condition(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        template = make_template(session, clock.now(), name="seg")
        broadcast = create_broadcast(
            session,
            name="To VIPs",
            template_id=template.id,
            list_id=None,
            segment={"has_tag": "VIP"},
            scheduled_at=clock.now() + timedelta(hours=1),
            now=clock.now(),
        )
        broadcast_id = broadcast.id
    page = admin_client.get(f"/admin/email/broadcasts/{broadcast_id}").text
    assert "the segment" in page and '"has_tag": "VIP"' in page
    assert "Nothing sent yet" in page and "No click yet" in page
