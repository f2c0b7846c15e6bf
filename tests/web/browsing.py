"""What the browser tests share: Debian's Chromium driven by Playwright against one real
`tidings serve` per test module on loopback, with its in-process worker and the development SMTP
sink (`--dev-smtp`, read at /dev/mailbox), so automations run and broadcasts are delivered while
a test watches. A failing test leaves a screenshot in tests/web/screenshots/.

The fixtures `server`, `browser` and `page` (tests/web/conftest.py) are made here; a browser test
module marks itself `pytestmark = skip_without_chromium` and signs in with `signed_in` (one
real login per server, its cookie reused) or, to test the login itself, `log_in`."""

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
skip_without_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api")
SCREENSHOTS = Path(__file__).parent / "screenshots"
# The machine is shared: a page or an expectation can take seconds under load. Waits are
# Playwright's polling `expect`s, never sleeps; what waits for the worker (a 1 s poll, then the
# page's own refresh) gets longer still.
ACTION_WAIT = 15_000
sync_api.expect.set_options(timeout=ACTION_WAIT)
WORKER_WAIT = 30_000
ADMIN_EMAIL = "boss@example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], home: Path, port: int) -> subprocess.Popen[bytes]:
    """`tidings serve` with its worker and the dev SMTP sink on loopback, once /health answers
    (slow on a loaded machine). Both ports are free ones: other test runs on the machine serve
    at the same time. Its output goes to serve.log, shown when it does not come up."""
    log = home / "serve.log"
    sink = ["--dev-smtp", "--dev-smtp-port", str(_free_port())]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", str(port), *sink],
            env=env,
            cwd=home,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"tidings serve did not come up; its output:\n{tail}") from None
            time.sleep(0.1)


class Server:
    def __init__(self, url: str, password: str, api_key: str) -> None:
        self.url = url
        self.password = password
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"})
        self.admin_cookies: list[dict[str, object]] | None = None  # see `signed_in`


def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{home}/tidings.db"
    # A click the test makes at once is a person's: no scanner window (the rule has its own tests).
    env = tidings_env(
        database_url=url, secret_file=str(home / "secret"), tracking_machine_seconds="0"
    )
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


def launched_browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_page(browser: object, server: Server, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh context (cookies) and tab at 1280 px; a screenshot when the test failed."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(ACTION_WAIT)
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


def signed_in(page: object, server: Server) -> None:
    """The admin signed in, on the dashboard. One real login per server through the form; the
    tests after it reuse its session cookie (each login costs a second or two on a loaded
    machine: argon2 and three page loads). Only `test_first_login_and_logout` logs out, of a
    session of its own (`log_in`); logging out ends that session alone."""
    if server.admin_cookies is None:
        log_in(page, server)
        server.admin_cookies = page.context.cookies()  # type: ignore[attr-defined]
        return
    page.context.add_cookies(server.admin_cookies)  # type: ignore[attr-defined]
    page.goto("/admin")  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()  # type: ignore[attr-defined]
