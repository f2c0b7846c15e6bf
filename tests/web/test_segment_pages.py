"""Segments: the builder page, the live count (and its errors at their path), saving."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database

from .conftest import csrf_of


def _people(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        contacts.upsert_contacts(
            session,
            [
                ContactInput(email="a@example.com", tags=["vip"]),
                ContactInput(email="b@example.com", tags=["vip"], first_name="Bea"),
                ContactInput(email="c@example.com"),
            ],
            now=clock.now(),
            cause=Cause.API,
        )


def test_live_count_and_errors(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    _people(database, clock)
    token = csrf_of(admin_client, "/admin/segments")
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}

    def count(condition: object) -> tuple[int, str]:
        text = condition if isinstance(condition, str) else json.dumps(condition)
        response = admin_client.post(
            "/admin/segments/count", data={"condition": text}, headers=headers
        )
        return response.status_code, response.text

    assert 'data-testid="segment-count">3<' in count("")[1]
    assert 'data-testid="segment-count">2<' in count({"has_tag": "vip"})[1]
    both = {
        "and": [
            {"has_tag": "vip"},
            {
                "or": [
                    {"field": "first_name", "op": "eq", "value": "Bea"},
                    {"field": "email", "op": "starts_with", "value": "zzz"},
                ]
            },
        ]
    }
    assert 'data-testid="segment-count">1<' in count(both)[1]
    status, text = count({"and": [{"event": {"type": "email_opened", "within_days": 0}}]})
    assert status == 422 and "and[0].event.within_days" in text
    status, text = count("{not json")
    assert status == 422 and "not valid JSON" in text


def test_save_and_reopen_a_segment(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    _people(database, clock)
    token = csrf_of(admin_client, "/admin/segments")
    condition = json.dumps({"and": [{"has_tag": "vip"}]})
    nameless = admin_client.post(
        "/admin/segments", data={"csrf_token": token, "condition": condition}
    )
    assert nameless.status_code == 422 and 'id="name-error"' in nameless.text
    saved = admin_client.post(
        "/admin/segments", data={"csrf_token": token, "condition": condition, "name": "VIPs"}
    )
    assert saved.status_code == 303
    page = admin_client.get(saved.headers["location"])
    assert page.status_code == 200 and "Segment saved." in page.text and "VIPs" in page.text
    assert "has_tag" in page.text  # the builder starts from the saved condition
    listed = admin_client.get(
        "/admin/contacts",
        params={"segment": saved.headers["location"].split("/")[-1].split("?")[0]},
    )
    assert listed.text.count('<a href="/admin/contacts/') == 2
