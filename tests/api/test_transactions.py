"""The request's transaction model (issue 12): reads never take SQLite's write lock, a write
takes it only for its own transaction, a request is stopped at its time budget, and an
unauthenticated request is refused before its body is read."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tidings.api.deps import SessionDep
from tidings.app import create_app
from tidings.auth.models import ApiKey
from tidings.auth.service import create_api_key
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database

PROBLEM = "application/problem+json"
WAIT = 10  # seconds a step may take before the test calls it stuck (never reached when green)


def _in_thread(call: Callable[[], Any]) -> Callable[[], Any]:
    """Start `call` in a thread; the returned function joins it and gives its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(WAIT)
        assert not thread.is_alive(), "the call waited for a lock"
        return result[0]

    return join


@pytest.fixture
def holding_read(app: FastAPI) -> Iterator[tuple[threading.Event, threading.Event]]:
    """A GET route that reads, then holds its transaction open until released."""
    inside, release = threading.Event(), threading.Event()

    @app.get("/api/v1/test/hold")
    def hold(session: SessionDep) -> dict[str, int]:
        count = session.scalar(text("SELECT count(*) FROM contacts"))
        inside.set()
        release.wait(WAIT)
        return {"count": int(count or 0)}

    yield inside, release
    release.set()


def test_a_write_request_succeeds_while_a_read_request_holds_its_transaction(
    client: TestClient, holding_read: tuple[threading.Event, threading.Event]
) -> None:
    inside, release = holding_read
    reading = _in_thread(lambda: client.get("/api/v1/test/hold"))
    assert inside.wait(WAIT)
    writing = _in_thread(lambda: client.post("/api/v1/contacts", json={"email": "a@example.com"}))
    assert writing().status_code == 201
    tagging = _in_thread(lambda: client.put("/api/v1/contacts/1/tags/VIP"))
    assert tagging().status_code in (200, 204)
    release.set()
    response = reading()
    assert response.status_code == 200
    assert response.json() == {"count": 0}  # its snapshot, taken before the write


def test_a_long_read_transaction_does_not_block_a_writer(
    database: Database, clock: FakeClock
) -> None:
    with database.read_session() as reading:
        reading.scalar(select(ApiKey.id))  # the read transaction has begun
        creating = _in_thread(lambda: _create_key(database, clock))
        assert creating() > 0
        if database.is_sqlite:  # (PostgreSQL reads committed rows at each statement)
            assert reading.scalar(select(ApiKey.id)) is None  # still its own snapshot


def test_read_requests_and_the_key_check_do_not_wait_for_a_writer(
    database: Database, client: TestClient, clock: FakeClock
) -> None:
    with database.session() as writing:
        create_api_key(writing, "holds the write lock", now=clock.now())
        writing.flush()  # the write lock is taken (SQLite) and held until the commit
        listing = _in_thread(lambda: client.get("/api/v1/contacts"))
        assert listing().status_code == 200
        previewing = _in_thread(
            lambda: client.post("/api/v1/segments/preview", json={"condition": {"has_tag": "x"}})
        )
        assert previewing().status_code == 200


def test_a_read_session_refuses_to_write(database: Database, clock: FakeClock) -> None:
    with pytest.raises(DBAPIError), database.read_session() as session:
        create_api_key(session, "nope", now=clock.now())


def _create_key(database: Database, clock: FakeClock) -> int:
    with database.session() as session:
        row, _ = create_api_key(session, "writer", now=clock.now())
        return row.id


# -- the time budget ----------------------------------------------------------------------


def _budget_client(
    settings: Settings, database: Database, clock: FakeClock, api_key: str, seconds: float
) -> TestClient:
    app = create_app(
        settings.model_copy(update={"request_timeout_seconds": seconds}),
        database=database,
        clock=clock,
    )

    @app.get("/api/v1/test/slow")
    def slow(session: SessionDep) -> dict[str, int]:
        if database.is_sqlite:
            statement = (
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                "WHERE x < 1000000000) SELECT count(*) FROM n"
            )
        else:
            statement = "SELECT count(*) FROM pg_sleep(60)"
        return {"count": int(session.scalar(text(statement)) or 0)}

    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {api_key}"
    return client


def _assert_budget_problem(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "time budget" in response.json()["detail"]
    assert "TIDINGS_REQUEST_TIMEOUT_SECONDS" in response.json()["detail"]


def test_a_statement_running_past_the_budget_is_stopped(
    settings: Settings, database: Database, clock: FakeClock, api_key: str
) -> None:
    with _budget_client(settings, database, clock, api_key, 0.2) as client:
        _assert_budget_problem(client.get("/api/v1/test/slow"))
        # The connection is fine afterwards, and a request within its budget answers.
        assert client.get("/api/v1/contacts").status_code == 200


def test_no_statement_starts_once_the_budget_is_spent(
    settings: Settings, database: Database, clock: FakeClock, api_key: str
) -> None:
    with _budget_client(settings, database, clock, api_key, 1e-9) as client:
        _assert_budget_problem(client.get("/api/v1/contacts"))
        _assert_budget_problem(
            client.post("/api/v1/segments/preview", json={"condition": {"has_tag": "x"}})
        )
        _assert_budget_problem(client.post("/api/v1/contacts", json={"email": "a@example.com"}))
    with database.read_session() as session:
        assert session.scalar(text("SELECT count(*) FROM contacts")) == 0


def test_an_expression_too_large_for_sqlite_is_a_422_naming_the_condition(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    @app.get("/api/v1/test/deep")
    def deep(session: SessionDep) -> dict[str, int]:
        where = " AND ".join(["1 = 1"] * 5_000)
        return {
            "count": int(session.scalar(text(f"SELECT count(*) FROM contacts WHERE {where}")) or 0)
        }

    response = client.get("/api/v1/test/deep")
    if not database.is_sqlite:
        assert response.status_code == 200
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "condition"


# -- the key before the body ----------------------------------------------------------------


def _call_without_reading(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """One POST through the raw ASGI interface whose receive() fails: the app must answer
    without reading the (announced, huge) body."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/contacts/bulk",
        "raw_path": b"/api/v1/contacts/bulk",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-length", b"1000000000"),
            (b"content-type", b"application/json"),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    "headers",
    [[], [(b"authorization", b"Bearer tid_not-a-key")], [(b"authorization", b"Basic eDp5")]],
    ids=["no key", "unknown key", "not bearer"],
)
def test_an_unauthenticated_request_is_refused_before_its_body_is_read(
    app: FastAPI, headers: list[tuple[bytes, bytes]]
) -> None:
    sent = _call_without_reading(app, headers)
    start = sent[0]
    assert start["type"] == "http.response.start"
    assert start["status"] == 401
    response_headers = dict(start["headers"])
    assert response_headers[b"content-type"] == PROBLEM.encode()
    assert response_headers[b"www-authenticate"] == b"Bearer"
    assert b"API key" in b"".join(m.get("body", b"") for m in sent[1:])
