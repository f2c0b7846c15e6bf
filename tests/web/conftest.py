"""Fixtures of the web admin's tests: users with passwords and signed-in test clients.

`signed_in(client, email, password)` logs a TestClient in the way a browser does (GET the form
for its CSRF cookie, POST it); `csrf_of(client)` reads the session's token from any page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web import browsing
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.deals.users import Role, create_user
from tidings.web import passwords
from tidings.web.passwords import set_password

ADMIN = ("admin@example.com", "correct horse battery")
MEMBER = ("member@example.com", "member password 1")


def make_user(database: Database, clock: FakeClock, email: str, password: str, role: Role) -> int:
    with database.session() as session:
        user = create_user(session, email, email.partition("@")[0], role=role, now=clock.now())
        set_password(session, user, password, now=clock.now())
        return user.id


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its production cost takes ~0.1 s a hash (more on a loaded machine); the
    tests hash and check dozens. A hash carries its parameters, so checks stay real."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def users(database: Database, clock: FakeClock) -> dict[str, int]:
    return {
        "admin": make_user(database, clock, *ADMIN, Role.ADMIN),
        "member": make_user(database, clock, *MEMBER, Role.MEMBER),
    }


@pytest.fixture
def browser_client(app: FastAPI, users: dict[str, int]) -> Iterator[TestClient]:
    """A client without an API key that does not follow redirects (tests look at them)."""
    with TestClient(app, raise_server_exceptions=True, follow_redirects=False) as client:
        yield client


def login_form_token(client: TestClient) -> str:
    page = client.get("/admin/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str, **extra: str) -> object:
    token = login_form_token(client)
    data = {"email": email, "password": password, "csrf_token": token, **extra}
    return client.post("/admin/login", data=data)


def csrf_of(client: TestClient, page: str = "/admin") -> str:
    response = client.get(page)
    assert response.status_code == 200, response.text
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', response.text)
    assert match
    return match.group(1)


@pytest.fixture
def admin_client(browser_client: TestClient) -> TestClient:
    response = sign_in(browser_client, *ADMIN)
    assert response.status_code == 303  # type: ignore[attr-defined]
    return browser_client


@pytest.fixture
def member_client(browser_client: TestClient) -> TestClient:
    response = sign_in(browser_client, *MEMBER)
    assert response.status_code == 303  # type: ignore[attr-defined]
    return browser_client


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    """Keep each phase's report on the test, so the browser fixture knows it failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[browsing.Server]:
    """A real `tidings serve` (worker, dev SMTP sink) per browser test module."""
    yield from browsing.running_server(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from browsing.launched_browser()


@pytest.fixture
def page(
    browser: object, server: browsing.Server, request: pytest.FixtureRequest
) -> Iterator[object]:
    yield from browsing.open_page(browser, server, request)
