"""Public tracking endpoints: open pixel, click redirect, site tracking, machine opens."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.events.tokens import InvalidToken, TrackingTokens

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"


@pytest.fixture
def tokens(clock: FakeClock) -> TrackingTokens:
    return TrackingTokens("test-secret-key", clock=clock)


def _contact(client: TestClient, email: str = "ann@example.com") -> int:
    return int(client.post("/api/v1/contacts", json={"email": email}).json()["id"])


def _events(app: FastAPI, database: Database) -> list[tuple[str, bool, dict[str, object]]]:
    app.state.tracking.flush()
    with database.session() as session:
        rows = session.execute(
            select(Activity.type, Activity.machine, Activity.data)
            .where(Activity.type != "contact_created")
            .order_by(Activity.id)
        ).all()
    return [(t, m, d) for t, m, d in rows]


def test_tokens_round_trip_and_refuse_tampering(tokens: TrackingTokens) -> None:
    assert tokens.read_open(tokens.open_token(7, "m1")).message_id == "m1"
    click = tokens.read_click(tokens.click_token(7, "https://shop.test/a?b=1", None))
    assert (click.contact_id, click.url) == (7, "https://shop.test/a?b=1")
    assert tokens.read_contact(tokens.contact_token(7)) == 7
    token = tokens.click_token(7, "https://shop.test/", "m1")
    with pytest.raises(InvalidToken):
        tokens.read_click(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(InvalidToken):
        tokens.read_click(tokens.open_token(7, "m1"))  # another kind of token
    with pytest.raises(InvalidToken):
        TrackingTokens("other-secret").read_open(tokens.open_token(7, None))
    with pytest.raises(ValueError):
        tokens.click_token(7, "javascript:alert(1)", None)


def test_open_pixel_records_and_flags_machine_opens(
    client: TestClient, app: FastAPI, database: Database, clock: FakeClock, tokens: TrackingTokens
) -> None:
    cid = _contact(client)
    token = tokens.open_token(cid, "msg-1")
    # Fetched two seconds after the message was made: a privacy proxy, not a person.
    clock.advance(seconds=2)
    response = client.get(f"/t/o/{token}.gif", headers={"User-Agent": BROWSER, "Authorization": ""})
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert (
        response.content.startswith(b"GIF89a") and "no-store" in response.headers["cache-control"]
    )
    clock.advance(minutes=30)
    client.get(f"/t/o/{token}.gif", headers={"User-Agent": BROWSER})
    client.get(f"/t/o/{token}.gif", headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy
    client.get(f"/t/o/{token}.gif", headers={"User-Agent": "Barracuda Sentinel (EE)"})
    assert [(t, m) for t, m, _ in _events(app, database)] == [
        ("email_opened", True),
        ("email_opened", False),
        ("email_opened", True),
        ("email_opened", True),
    ]
    engagement = client.get(f"/api/v1/contacts/{cid}").json()["engagement"]
    assert engagement["opens"] == 1
    # Segments ignore machine opens unless asked.
    human = {"event": {"type": "email_opened", "at_least": 2}}
    any_open = {"event": {"type": "email_opened", "at_least": 2, "include_machine": True}}
    assert client.post("/api/v1/segments/preview", json={"condition": human}).json()["count"] == 0
    assert (
        client.post("/api/v1/segments/preview", json={"condition": any_open}).json()["count"] == 1
    )


def test_tampered_pixel_still_answers_a_gif_and_records_nothing(
    client: TestClient, app: FastAPI, database: Database, tokens: TrackingTokens
) -> None:
    cid = _contact(client)
    token = tokens.open_token(cid, None)
    response = client.get(f"/t/o/{token}x.gif")
    assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    assert _events(app, database) == []


def test_click_redirects_only_to_the_sealed_url(
    client: TestClient, app: FastAPI, database: Database, clock: FakeClock, tokens: TrackingTokens
) -> None:
    cid = _contact(client)
    token = tokens.click_token(cid, "https://shop.test/pricing?ref=mail", "msg-1")
    clock.advance(minutes=5)
    response = client.get(f"/t/c/{token}", headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "shop.test", "/pricing")
    query = parse_qs(target.query)
    assert query["ref"] == ["mail"] and tokens.read_contact(query["tdc"][0]) == cid
    assert "tidings_c=" in response.headers["set-cookie"]

    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        tokens.open_token(cid, None),
        "https:%2F%2Fevil.test",
    ):
        refused = client.get(f"/t/c/{bad}", follow_redirects=False)
        assert refused.status_code == 404 and "location" not in refused.headers
    assert _events(app, database) == [
        (
            "link_clicked",
            False,
            {"url": "https://shop.test/pricing?ref=mail", "message_id": "msg-1"},
        )
    ]
    assert client.get(f"/api/v1/contacts/{cid}").json()["engagement"]["clicks"] == 1


def test_scanner_click_within_seconds_is_flagged(
    client: TestClient, app: FastAPI, database: Database, tokens: TrackingTokens
) -> None:
    cid = _contact(client)
    token = tokens.click_token(cid, "https://shop.test/", None)
    assert (
        client.get(
            f"/t/c/{token}", headers={"User-Agent": BROWSER}, follow_redirects=False
        ).status_code
        == 302
    )
    assert _events(app, database)[0][:2] == ("link_clicked", True)


def test_site_snippet_and_visits(
    client: TestClient, app: FastAPI, database: Database, tokens: TrackingTokens
) -> None:
    cid = _contact(client)
    script = client.get("/t/site.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/t/v" in script.text and "tdc" in script.text
    body = {
        "c": tokens.contact_token(cid),
        "u": "https://shop.test/cart",
        "r": "https://mail.test/",
    }
    assert client.post("/t/v", json=body).status_code == 204
    assert client.post("/t/v", json={**body, "c": body["c"] + "x"}).status_code == 404
    assert client.post("/t/v", json={**body, "u": "javascript:alert(1)"}).status_code == 400
    assert client.post("/t/v", content=b"{nope").status_code == 400
    events = _events(app, database)
    assert events == [
        (
            "site_visit",
            False,
            {"url": "https://shop.test/cart", "properties": {"referrer": "https://mail.test/"}},
        )
    ]
    assert client.get(f"/api/v1/contacts/{cid}").json()["engagement"]["visits"] == 1


def test_queued_events_are_written_on_clean_shutdown(
    app: FastAPI, database: Database, clock: FakeClock, tokens: TrackingTokens
) -> None:
    with database.session() as session:
        from tidings.contacts import service

        cid = service.upsert_contacts(
            session, [service.ContactInput(email="a@example.com")], now=clock.now(), cause="api"
        ).contact_ids[0]
    token = tokens.open_token(cid, None)
    clock.advance(minutes=1)
    with TestClient(app) as client:
        for _ in range(50):
            client.get(f"/t/o/{token}.gif", headers={"User-Agent": BROWSER})
    with database.session() as session:
        count = len(
            session.scalars(select(Activity.id).where(Activity.type == "email_opened")).all()
        )
    assert count == 50


def test_retention_prunes_old_events(database: Database, clock: FakeClock) -> None:
    from tidings.contacts import service
    from tidings.events.recorder import TrackingRecorder
    from tidings.events.service import ingest_events

    with database.session() as session:
        cid = service.upsert_contacts(
            session, [service.ContactInput(email="a@example.com")], now=clock.now(), cause="api"
        ).contact_ids[0]
        ingest_events(
            session,
            [
                {
                    "type": "email_opened",
                    "contact_id": cid,
                    "occurred_at": (clock.now() - timedelta(days=d)).isoformat(),
                }
                for d in (1, 40, 400)
            ],
            now=clock.now(),
            cause="api",
        )
    assert TrackingRecorder(database, clock).prune_expired() == 0  # no retention configured
    assert TrackingRecorder(database, clock, retention_days=30).prune_expired() == 2
    with database.session() as session:
        assert (
            len(session.scalars(select(Activity.id).where(Activity.type == "email_opened")).all())
            == 1
        )


def test_pixel_hits_stay_out_of_the_access_log() -> None:
    import logging

    from tidings.events.tracking import _QuietPixels

    def record(path: str) -> logging.LogRecord:
        args = ("127.0.0.1:5000", "GET", path, "1.1", 200)
        return logging.LogRecord(
            "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None
        )

    assert not _QuietPixels().filter(record("/t/o/abc.gif"))
    assert _QuietPixels().filter(record("/t/c/abc"))
    assert _QuietPixels().filter(record("/api/v1/contacts"))
