"""A contact's page: inline profile edits, tags, lists, status with a reason, timeline pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.catalog import create_list
from tidings.contacts.schemas import ListIn
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.web.contact_reads import TIMELINE_PAGE

from .conftest import csrf_of


def _contact(database: Database, clock: FakeClock) -> int:
    with database.session() as session:
        create_list(session, ListIn(name="News"), now=clock.now())
        contact = contacts.create_contact(
            session,
            ContactInput(email="ann@example.com", first_name="Ann"),
            now=clock.now(),
            cause=Cause.API,
        )
        return contact.id


def test_the_page_shows_every_section(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    cid = _contact(database, clock)
    page = admin_client.get(f"/admin/contacts/{cid}")
    assert page.status_code == 200
    for heading in (
        "Profile",
        "Tags",
        "Lists",
        "Status:",
        "Engagement",
        "Automations",
        "Deals and tasks",
        "Timeline",
    ):
        assert heading in page.text
    assert "Contact created" in page.text
    assert admin_client.get("/admin/contacts/999999").status_code == 404


def test_inline_edit_tags_lists_and_status(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    cid = _contact(database, clock)
    token = csrf_of(admin_client, f"/admin/contacts/{cid}")
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    form = admin_client.get(f"/admin/contacts/{cid}/profile/edit", headers=headers)
    assert 'name="first_name"' in form.text
    bad = admin_client.post(
        f"/admin/contacts/{cid}/profile",
        data={"email": "not an email", "first_name": "Ann"},
        headers=headers,
    )
    assert bad.status_code == 422 and 'id="email-error"' in bad.text
    saved = admin_client.post(
        f"/admin/contacts/{cid}/profile",
        data={"email": "ann@example.com", "first_name": "Annie"},
        headers=headers,
    )
    assert saved.status_code == 200 and "Annie" in saved.text and 'id="profile"' in saved.text

    tagged = admin_client.post(f"/admin/contacts/{cid}/tags", data={"tag": "vip"}, headers=headers)
    assert tagged.status_code == 200 and "Remove tag vip" in tagged.text
    untagged = admin_client.post(
        f"/admin/contacts/{cid}/tags/remove", data={"tag": "vip"}, headers=headers
    )
    assert "Remove tag vip" not in untagged.text

    list_id = re.search(
        r'<option value="(\d+)"\s*>News', admin_client.get(f"/admin/contacts/{cid}").text
    )
    assert list_id
    joined = admin_client.post(
        f"/admin/contacts/{cid}/lists", data={"list_id": list_id.group(1)}, headers=headers
    )
    assert joined.status_code == 200 and "status-active" in joined.text
    admin_client.post(f"/admin/contacts/{cid}/lists/{list_id.group(1)}/leave", headers=headers)
    refused = admin_client.post(
        f"/admin/contacts/{cid}/lists", data={"list_id": list_id.group(1)}, headers=headers
    )
    assert refused.status_code == 422 and 'id="list_id-error"' in refused.text

    no_reason = admin_client.post(
        f"/admin/contacts/{cid}/status", data={"csrf_token": token, "status": "unsubscribed"}
    )
    assert no_reason.status_code == 422 and 'id="reason-error"' in no_reason.text
    changed = admin_client.post(
        f"/admin/contacts/{cid}/status",
        data={"csrf_token": token, "status": "unsubscribed", "reason": "asked by phone"},
    )
    assert changed.status_code == 303
    back = admin_client.post(
        f"/admin/contacts/{cid}/status",
        data={"csrf_token": token, "status": "subscribed", "reason": "oops"},
    )
    assert back.status_code == 422 and "resubscribe" in back.text
    page = admin_client.get(f"/admin/contacts/{cid}")
    assert "subscribed → unsubscribed — asked by phone" in page.text
    assert "Tagged vip" in page.text


def test_the_timeline_pages_and_filters(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    cid = _contact(database, clock)
    with database.session() as session:
        contact = contacts.get_contact(session, cid)
        for i in range(TIMELINE_PAGE + 3):
            contacts.add_tag(session, contact, f"t{i}", now=clock.now(), cause=Cause.API)
    page = admin_client.get(f"/admin/contacts/{cid}")
    more = re.search(r'hx-get="(/admin/contacts/\d+/timeline\?kind=&amp;before=\d+)"', page.text)
    assert more
    rest = admin_client.get(more.group(1).replace("&amp;", "&"))
    assert rest.text.count("<li>") == 4  # three tags and the contact's creation
    assert 'hx-trigger="revealed"' not in rest.text
    profile_only = admin_client.get(f"/admin/contacts/{cid}/timeline", params={"kind": "profile"})
    assert "contact_created" in profile_only.text and "tag_added" not in profile_only.text
