"""The web admin in a real browser: Debian's Chromium driven by Playwright against a real
`tidings serve` on loopback. A failing test leaves a screenshot in tests/web/screenshots/."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.processes import COMMAND, tidings_env
from tidings.auth.service import create_api_key
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.deals.users import Role, create_user
from tidings.web.passwords import one_time_password, set_password

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api")
SCREENSHOTS = Path(__file__).parent / "screenshots"
ADMIN_EMAIL = "boss@example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """`tidings serve` on loopback, once /health answers (slow on a loaded machine)."""
    process = subprocess.Popen(
        [*COMMAND, "serve", "--port", str(port), "--no-worker"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)


class Server:
    def __init__(self, url: str, password: str, api_key: str) -> None:
        self.url = url
        self.password = password
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{home}/tidings.db"
    env = tidings_env(database_url=url, secret_file=str(home / "secret"))
    # The admin and an API key are made in-process (the CLI that prints the password has its
    # own tests): spawning a process per command costs seconds on a loaded machine.
    database = create_database(url)
    upgrade(database)
    password = one_time_password()
    with database.session() as session:
        user = create_user(session, ADMIN_EMAIL, "Boss", role=Role.ADMIN, now=datetime.now(UTC))
        set_password(session, user, password, now=datetime.now(UTC))
        _, key = create_api_key(session, "browser-tests", now=datetime.now(UTC))
    database.dispose()
    port = _free_port()
    process = _serve(env, home, port)
    try:
        yield Server(f"http://127.0.0.1:{port}", password, key)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, server: Server, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def log_in(page: object, server: Server) -> None:
    page.goto("/admin")  # type: ignore[attr-defined]
    page.get_by_label("Email").fill(ADMIN_EMAIL)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(server.password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()  # type: ignore[attr-defined]


def test_first_login_and_logout(page: object, server: Server) -> None:
    page.goto("/admin/contacts")  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Log in to Tidings")).to_be_visible()  # type: ignore[attr-defined]
    log_in(page, server)
    page.get_by_role("button", name="Log out").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Log in to Tidings")).to_be_visible()  # type: ignore[attr-defined]
    page.goto("/admin")  # type: ignore[attr-defined]
    assert "/admin/login" in page.url  # type: ignore[attr-defined]


def test_a_wrong_password_is_shown_next_to_the_field(page: object, server: Server) -> None:
    page.goto("/admin/login")  # type: ignore[attr-defined]
    page.get_by_label("Email").fill(ADMIN_EMAIL)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill("not the password")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    error = page.locator("#password-error")  # type: ignore[attr-defined]
    sync_api.expect(error).to_have_text("Wrong email or password.")
    sync_api.expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")  # type: ignore[attr-defined]


def test_a_forged_form_is_refused(page: object, server: Server) -> None:
    log_in(page, server)
    page.goto("/admin/contacts")  # type: ignore[attr-defined]
    # A page of another origin cannot read the token; without it the request is refused.
    status = page.evaluate(  # type: ignore[attr-defined]
        """async () => (await fetch('/admin/contacts', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'email=forged%40example.com'})).status"""
    )
    assert status == 403
    page.locator("#h-new ~ form input[name=csrf_token]").evaluate("e => e.value = 'stale'")  # type: ignore[attr-defined]
    page.locator("#f-email").fill("forged@example.com")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create contact").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()  # type: ignore[attr-defined]


def test_create_a_contact_tag_it_and_see_its_timeline(page: object, server: Server) -> None:
    log_in(page, server)
    page.get_by_role("link", name="Contacts").click()  # type: ignore[attr-defined]
    page.locator("#f-email").fill("ann@example.com")  # type: ignore[attr-defined]
    page.get_by_label("First name").fill("Ann")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create contact").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Ann ann@example.com")).to_be_visible()  # type: ignore[attr-defined]
    page.get_by_label("Add a tag").fill("vip")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Add tag").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("button", name="Remove tag vip")).to_be_visible()  # type: ignore[attr-defined]
    page.reload()  # type: ignore[attr-defined]
    timeline = page.locator("#timeline")  # type: ignore[attr-defined]
    sync_api.expect(timeline).to_contain_text("Tagged vip")
    sync_api.expect(timeline).to_contain_text("Contact created")
    page.get_by_label("Show").select_option("tags")  # type: ignore[attr-defined]
    sync_api.expect(timeline).not_to_contain_text("Contact created")


def test_build_a_segment_and_watch_the_count(page: object, server: Server) -> None:
    people = [
        {"email": f"seg{i}@example.com", "tags": ["buyer"] if i < 2 else []} for i in range(5)
    ]
    assert server.api.post("/api/v1/contacts/bulk", json={"contacts": people}).status_code == 200
    log_in(page, server)
    page.goto("/admin/segments")  # type: ignore[attr-defined]
    count = page.get_by_test_id("segment-count")  # type: ignore[attr-defined]
    total = int(count.inner_text().replace(",", ""))
    assert total >= 5
    page.get_by_role("button", name="+ Tag").click()  # type: ignore[attr-defined]
    page.get_by_label("Tag name").fill("buyer")  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("2")
    sync_api.expect(page.locator("#segment-json")).to_have_value(
        '{\n  "and": [\n    {\n      "has_tag": "buyer"\n    }\n  ]\n}'
    )  # type: ignore[attr-defined]
    page.get_by_role("button", name="+ Field").click()  # type: ignore[attr-defined]
    page.locator(".cond").nth(1).get_by_label("Value").fill("seg1")  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("1")
    page.get_by_label("Segment name").fill("Buyers")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save segment").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_text("Segment saved.")).to_be_visible()  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("1")


def test_the_engagement_chart_is_drawn(page: object, server: Server) -> None:
    events = [
        {"type": "email_opened", "email": "chart@example.com", "event_id": f"open-{i}"}
        for i in range(3)
    ]
    stored = server.api.post("/api/v1/events/batch?create_contacts=true", json=events)
    assert stored.status_code == 200 and stored.json()["stored"] == 3, stored.text
    log_in(page, server)
    canvas = page.locator("#engagement-chart")  # type: ignore[attr-defined]
    sync_api.expect(canvas).to_be_visible()
    painted = page.evaluate(  # type: ignore[attr-defined]
        """() => { const c = document.getElementById('engagement-chart');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 500


def test_the_layout_at_390_pixels_and_by_keyboard(page: object, server: Server) -> None:
    log_in(page, server)
    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    menu = page.get_by_role("button", name="Menu")  # type: ignore[attr-defined]
    nav_link = page.locator("#main-nav").get_by_role("link", name="Contacts")  # type: ignore[attr-defined]
    sync_api.expect(menu).to_be_visible()
    sync_api.expect(nav_link).to_be_hidden()
    menu.click()
    sync_api.expect(nav_link).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 390
    menu.press("Tab")  # the menu's entries follow the button in the keyboard order
    focused = page.evaluate("() => document.activeElement.textContent.trim()")  # type: ignore[attr-defined]
    assert focused == "Dashboard"
    page.reload()  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    focused = page.evaluate("() => document.activeElement.textContent.trim()")  # type: ignore[attr-defined]
    assert focused == "Skip to content"
