"""The public pages behind the links in mail: what a link scanner's GET, a mailbox provider's
one-click POST, a person's button and a forged form can and cannot change."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.messaging.test_api import contact, form_token
from tidings.activities.models import Activity
from tidings.db.engine import Database
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import OutboxMessage

LINKS = LinkSigner("test-secret-key", "http://testserver")
ONE_CLICK = "List-Unsubscribe=One-Click"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _status(client: TestClient, contact_id: int) -> str:
    return str(client.get(f"/api/v1/contacts/{contact_id}").json()["status"])


def _unsubscribes(database: Database, contact_id: int) -> list[dict[str, Any]]:
    with database.session() as session:
        return list(
            session.scalars(
                select(Activity.data).where(
                    Activity.contact_id == contact_id, Activity.type == "email_unsubscribed"
                )
            )
        )


@pytest.fixture
def public(client: TestClient) -> TestClient:
    return TestClient(client.app)  # no API key: the link alone


@pytest.mark.parametrize(
    "send",
    [
        # RFC 8058 3.1: what a mailbox provider posts; senders SHOULD expect multipart
        {"files": {"List-Unsubscribe": (None, "One-Click")}},
        {"content": ONE_CLICK, "headers": {"content-type": "application/x-www-form-urlencoded"}},
    ],
    ids=["multipart", "urlencoded"],
)
def test_one_click_post_in_either_form_encoding(
    client: TestClient, public: TestClient, database: Database, send: dict[str, Any]
) -> None:
    ann = contact(client, "ann@example.com")
    done = public.post(_path(LINKS.unsubscribe_url(ann)), **send)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert _status(client, ann) == "unsubscribed"
    assert [a["how"] for a in _unsubscribes(database, ann)] == ["one-click"]


def test_a_post_without_the_one_click_body_only_shows_the_page(
    client: TestClient, public: TestClient, database: Database
) -> None:
    ann = contact(client, "ann@example.com")
    path = _path(LINKS.unsubscribe_url(ann))
    for send in (
        {},  # an empty POST (a scanner "checking" the link)
        {"content": b"List-Unsubscribe=Yes", "headers": {"content-type": "text/plain"}},
        {"data": {"List-Unsubscribe": "Two-Clicks"}},
        {"data": {"csrf": "forged.token"}},
        {"files": {"csrf": (None, LINKS.form_token("another-link"))}},
    ):
        page = public.post(path, **send)
        assert page.status_code == 200 and "Unsubscribe" in page.text, send
        assert 'name="csrf"' in page.text
    assert _status(client, ann) == "subscribed" and _unsubscribes(database, ann) == []
    # The page's own button, from our page: unsubscribed, recorded as the link.
    page = public.get(path).text
    assert _status(client, ann) == "subscribed"
    foreign = public.post(
        path, data={"csrf": form_token(page)}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and _status(client, ann) == "subscribed"
    done = public.post(
        path, data={"csrf": form_token(page)}, headers={"Origin": "http://testserver"}
    )
    assert done.status_code == 200 and _status(client, ann) == "unsubscribed"
    assert [a["how"] for a in _unsubscribes(database, ann)] == ["link"]


def _opt_in(client: TestClient, database: Database, email: str, list_id: int) -> tuple[int, str]:
    """Ask to join; returns the contact and the path of the confirmation link mailed."""
    out = client.post("/api/v1/opt-ins", json={"email": email, "list_id": list_id})
    assert out.status_code == 202, out.text
    with database.session() as session:
        url = session.scalars(
            select(OutboxMessage.context).where(
                OutboxMessage.id == out.json()["confirmation"]["outbox_id"]
            )
        ).one()["confirm_url"]
    return int(out.json()["contact_id"]), _path(url)


def _confirm(public: TestClient, path: str, **headers: str) -> Any:
    page = public.get(path)
    token = form_token(page.text) if 'name="csrf"' in page.text else "none.none"
    return public.post(path, data={"csrf": token}, headers=headers)


def test_double_opt_in_link_is_a_page_used_once_that_never_undoes_an_unsubscribe(
    client: TestClient, public: TestClient, database: Database
) -> None:
    weekly = client.post("/api/v1/lists", json={"name": "Weekly", "double_opt_in": True}).json()
    new, link = _opt_in(client, database, "new@example.com", weekly["id"])
    # A link scanner opens it: a page with a button, nothing changes.
    for _ in range(3):
        page = public.get(link)
        assert page.status_code == 200 and "Yes, subscribe me" in page.text
        assert "Weekly" in page.text
    assert _status(client, new) == "pending"
    # A POST without the page's token (or from another site) changes nothing either.
    assert public.post(link).status_code == 403
    assert public.post(link, data={"csrf": LINKS.form_token("other")}).status_code == 403
    foreign = _confirm(public, link, Origin="https://evil.example")
    assert foreign.status_code == 403 and _status(client, new) == "pending"
    done = _confirm(public, link, Origin="http://testserver")
    assert done.status_code == 200 and _status(client, new) == "subscribed"
    # Used: opening it again, or posting the form of a page opened before, changes nothing.
    again = public.get(link)
    assert again.status_code == 200 and "Already confirmed" in again.text
    assert 'name="csrf"' not in again.text
    stale = {"csrf": form_token(page.text)}
    assert "Already confirmed" in public.post(link, data=stale).text
    # Unsubscribed afterwards: the old link cannot undo that.
    client.post(f"/api/v1/contacts/{new}/status", json={"status": "unsubscribed"})
    assert _status(client, new) == "unsubscribed"
    assert "Already confirmed" in public.get(link).text
    assert public.post(link, data=stale).status_code == 200
    assert _status(client, new) == "unsubscribed"
    with database.session() as session:
        confirmed = session.scalars(
            select(Activity.id).where(
                Activity.contact_id == new, Activity.type == "opt_in_confirmed"
            )
        ).all()
    assert len(confirmed) == 1


def test_a_newer_request_replaces_the_older_link_and_leaving_the_list_voids_it(
    client: TestClient, public: TestClient, database: Database, clock: Any
) -> None:
    weekly = client.post("/api/v1/lists", json={"name": "Weekly", "double_opt_in": True}).json()
    ann, first = _opt_in(client, database, "ann@example.com", weekly["id"])
    clock.advance(minutes=5)
    _, second = _opt_in(client, database, "ann@example.com", weekly["id"])
    assert first != second
    assert public.get(first).status_code == 409  # replaced by the newer link
    assert _confirm(public, second).status_code == 200
    assert _status(client, ann) == "subscribed"
    # Another list: the person asks, then leaves before confirming (unsubscribes everything).
    monthly = client.post("/api/v1/lists", json={"name": "Monthly", "double_opt_in": True}).json()
    _, third = _opt_in(client, database, "ann@example.com", monthly["id"])
    path = _path(LINKS.unsubscribe_url(ann))
    public.post(
        path, content=ONE_CLICK, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert _status(client, ann) == "unsubscribed"
    assert public.get(third).status_code == 409
    assert _status(client, ann) == "unsubscribed"


def test_preference_page_forms_need_their_token_and_resubscribe_is_for_unsubscribed_only(
    client: TestClient, public: TestClient, database: Database
) -> None:
    weekly = client.post("/api/v1/lists", json={"name": "Weekly", "double_opt_in": True}).json()
    pending, _ = _opt_in(client, database, "new@example.com", weekly["id"])
    prefs = _path(LINKS.preferences_url(pending))
    page = public.get(prefs).text
    assert "Subscribe again" not in page and "waiting for your confirmation" in page
    refused = public.post(prefs, data={"action": "resubscribe", "csrf": form_token(page)})
    assert refused.status_code == 409 and _status(client, pending) == "pending"
    # An unsubscribed contact gets the button; the form must come from our page.
    ann = contact(client, "ann@example.com", status="unsubscribed")
    prefs = _path(LINKS.preferences_url(ann))
    page = public.get(prefs).text
    assert "Subscribe again" in page
    for data, headers in (
        ({"action": "resubscribe"}, {}),
        ({"action": "resubscribe", "csrf": "x.y"}, {}),
        ({"action": "resubscribe", "csrf": LINKS.form_token(_path(LINKS.preferences_url(1)))}, {}),
        ({"action": "resubscribe", "csrf": form_token(page)}, {"Origin": "https://evil.example"}),
        ({"action": "resubscribe", "csrf": form_token(page)}, {"Origin": "null"}),
    ):
        assert public.post(prefs, data=data, headers=headers).status_code == 403
        assert _status(client, ann) == "unsubscribed"
    done = public.post(
        prefs,
        data={"action": "resubscribe", "csrf": form_token(page)},
        headers={"Origin": "http://testserver"},
    )
    assert done.status_code == 200 and _status(client, ann) == "subscribed"
