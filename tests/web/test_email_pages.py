"""Email in the web admin: a template saved (an error next to its field), previewed for a
contact, a broadcast created for a list and its messages counted, cancel, the DKIM record."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.catalog import create_list
from tidings.contacts.models import Suppression
from tidings.contacts.schemas import ListIn
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.messaging.models import Broadcast
from tidings.messaging.service import create_template
from tidings.segments.service import save_segment

from .conftest import csrf_of


def test_a_template_saved_previewed_and_a_broadcast_created(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        news = create_list(session, ListIn(name="News"), now=clock.now()).id
        contacts.create_contact(
            session,
            ContactInput(email="reader@example.com", first_name="Rita", lists=["News"]),
            now=clock.now(),
            cause=Cause.API,
        )
    token = csrf_of(admin_client, "/admin/email/templates/new")
    form = {"csrf_token": token, "name": "hello", "subject": "Hi {{ contact.first_name }}"}
    broken = admin_client.post("/admin/email/templates", data={**form, "html": "{% if %}"})
    assert broken.status_code == 422 and 'role="alert"' in broken.text
    saved = admin_client.post(
        "/admin/email/templates",
        data={**form, "html": "<p>Hello {{ contact.first_name }}</p>"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    path = saved.headers["location"]
    preview = admin_client.post(
        f"{path}/preview", data={"csrf_token": token, "email": "reader@example.com"}
    )
    assert preview.status_code == 200 and "Hi Rita" in preview.text
    template_id = int(path.rsplit("/", 1)[1])
    made = admin_client.post(
        "/admin/email/broadcasts",
        data={
            "csrf_token": token,
            "name": "March",
            "template_id": str(template_id),
            "list_id": str(news),
            "scheduled_at": "2099-01-01T09:00",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    page = admin_client.get("/admin/email")
    assert (
        "March" in page.text and "scheduled" in page.text and "No DKIM key configured" in page.text
    )
    with database.session() as session:
        broadcast_id = session.query(Broadcast).one().id
    cancelled = admin_client.post(
        f"/admin/email/broadcasts/{broadcast_id}/cancel",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert cancelled.status_code == 303
    assert "cancelled" in admin_client.get("/admin/email").text
    bad = admin_client.post(
        "/admin/email/broadcasts", data={"csrf_token": token, "name": "x", "template_id": "999"}
    )
    assert bad.status_code == 422


def test_a_broadcast_to_a_saved_segment(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        template = create_template(
            session,
            name="t",
            subject="s",
            html="<p>x</p>",
            text=None,
            variables={},
            track_opens=True,
            track_clicks=True,
            now=clock.now(),
        )
        segment = save_segment(session, "VIPs", {"has_tag": "VIP"}, now=clock.now())
        news = create_list(session, ListIn(name="News"), now=clock.now()).id
        ids = {"template_id": str(template.id), "segment_id": str(segment.id)}
    token = csrf_of(admin_client, "/admin/email")
    form = {"csrf_token": token, "name": "To VIPs", **ids, "scheduled_at": "2099-01-01T09:00"}
    both = admin_client.post("/admin/email/broadcasts", data={**form, "list_id": str(news)})
    assert both.status_code == 422 and "not both" in both.text
    made = admin_client.post("/admin/email/broadcasts", data=form, follow_redirects=False)
    assert made.status_code == 303
    with database.session() as session:
        broadcast = session.query(Broadcast).one()
        assert broadcast.segment == {"has_tag": "VIP"} and broadcast.list_id is None


def test_suppressions_added_and_removed(admin_client: TestClient, database: Database) -> None:
    token = csrf_of(admin_client, "/admin/email")
    bad = admin_client.post(
        "/admin/email/suppressions", data={"csrf_token": token, "value": "not an address"}
    )
    assert bad.status_code == 422 and 'id="value-error"' in bad.text
    added = admin_client.post(
        "/admin/email/suppressions",
        data={"csrf_token": token, "value": "@Spam.example", "reason": "complaints"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = admin_client.get("/admin/email")
    assert "@spam.example" in page.text and "complaints" in page.text
    with database.session() as session:
        entry = session.query(Suppression).one()
    removed = admin_client.post(
        f"/admin/email/suppressions/{entry.id}/delete",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    with database.session() as session:
        assert session.query(Suppression).count() == 0
    gone = admin_client.post(
        f"/admin/email/suppressions/{entry.id}/delete", data={"csrf_token": token}
    )
    assert gone.status_code == 404
