"""The contacts list: create, search, filters, keyset pages and bulk actions (ASGI, both DBs)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.web.contacts_pages import PAGE_SIZE

from .conftest import csrf_of


def _seed(database: Database, clock: FakeClock, n: int, **extra: object) -> None:
    with database.session() as session:
        contacts.upsert_contacts(
            session,
            [
                ContactInput(email=f"person{i:03}@example.com", first_name=f"P{i}", **extra)
                for i in range(n)
            ],  # type: ignore[arg-type]
            now=clock.now(),
            cause=Cause.API,
        )


def _emails(html: str) -> list[str]:
    return re.findall(r'<a href="/admin/contacts/\d+">([^<]+)</a>', html)


def test_create_a_contact_then_find_it(admin_client: TestClient) -> None:
    token = csrf_of(admin_client, "/admin/contacts")
    bad = admin_client.post("/admin/contacts", data={"csrf_token": token, "email": "nope"})
    assert bad.status_code == 422
    assert 'id="email-error"' in bad.text
    made = admin_client.post(
        "/admin/contacts",
        data={"csrf_token": token, "email": "Ann@Example.com", "first_name": "Ann"},
    )
    assert made.status_code == 303
    assert re.fullmatch(r"/admin/contacts/\d+", made.headers["location"])
    again = admin_client.post(
        "/admin/contacts", data={"csrf_token": token, "email": "ann@example.com"}
    )
    assert again.status_code == 422 and "already exists" in again.text
    found = admin_client.get("/admin/contacts", params={"q": "ann"})
    assert _emails(found.text) == ["ann@example.com"]


def test_keyset_pages_newest_first(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    _seed(database, clock, PAGE_SIZE + 5)
    first = admin_client.get("/admin/contacts")
    emails = _emails(first.text)
    assert len(emails) == PAGE_SIZE and emails[0] == f"person{PAGE_SIZE + 4:03}@example.com"
    next_link = re.search(r'href="(/admin/contacts\?[^"]*after=\d+[^"]*)" rel="next"', first.text)
    assert next_link
    second = admin_client.get(next_link.group(1).replace("&amp;", "&"))
    assert _emails(second.text) == [f"person{i:03}@example.com" for i in range(4, -1, -1)]
    assert 'rel="next"' not in second.text


def test_filters_and_a_bad_condition(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    _seed(database, clock, 3, tags=["vip"])
    _seed_other = ContactInput(email="other@example.com", status="unsubscribed")
    with database.session() as session:
        contacts.upsert_contacts(session, [_seed_other], now=clock.now(), cause=Cause.API)
    assert len(_emails(admin_client.get("/admin/contacts", params={"tag": "vip"}).text)) == 3
    assert _emails(admin_client.get("/admin/contacts", params={"status": "unsubscribed"}).text) == [
        "other@example.com"
    ]
    adhoc = admin_client.get("/admin/contacts", params={"condition": '{"lacks_tag": "vip"}'})
    assert _emails(adhoc.text) == ["other@example.com"]
    broken = admin_client.get("/admin/contacts", params={"condition": '{"has_tag": 3}'})
    assert broken.status_code == 422 and 'id="condition-error"' in broken.text


def test_bulk_actions_on_a_selection_and_on_every_match(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    _seed(database, clock, 4)
    with database.session() as session:
        ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
    token = csrf_of(admin_client, "/admin/contacts")
    nothing = admin_client.post(
        "/admin/contacts/bulk", data={"csrf_token": token, "action": "tag", "bulk_tag": "x"}
    )
    assert nothing.status_code == 422 and 'id="ids-error"' in nothing.text
    tagged = admin_client.post(
        "/admin/contacts/bulk",
        data={"csrf_token": token, "action": "tag", "bulk_tag": "fair", "ids": ids[:2]},
    )
    assert tagged.status_code == 303 and "Tagged+2" in tagged.headers["location"]
    everyone = admin_client.post(
        "/admin/contacts/bulk",
        data={"csrf_token": token, "action": "unsubscribe", "scope": "all", "tag": "fair"},
    )
    assert everyone.status_code == 303
    with database.session() as session:
        statuses = dict(session.execute(select(Contact.id, Contact.status)).all())
    assert [statuses[i] for i in ids] == [
        "unsubscribed",
        "unsubscribed",
        "subscribed",
        "subscribed",
    ]
    export = admin_client.post(
        "/admin/contacts/bulk",
        data={"csrf_token": token, "action": "export", "scope": "all", "status": "subscribed"},
    )
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("email") and len(lines) == 3
