"""Run now: a system automation started on demand (`POST /api/v1/system/automations/{id}/runs`,
`tidings system run`), once per request key however often it is sent; refused for a paused or a
contact automation; the scheduler advances the run like a ticked one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tidings.automations.service import create_automation
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database
from tidings.system.models import SystemRun, SystemTick
from tidings.system.scheduler import SystemScheduler
from tidings.system.starts import start_now

EXPORT = {
    "kind": "system",
    "name": "Nightly export",
    "trigger": {"type": "schedule", "cron": "0 6 * * MON", "timezone": "Europe/Berlin"},
    "steps": [{"id": "export", "job": {"kind": "export", "export": {"type": "contacts"}}}],
}


def _create(database: Database, clock: FakeClock, data: dict[str, object]) -> int:
    with database.session() as session:
        return create_automation(session, data, now=clock.now()).id


def _count(database: Database, model: type[SystemRun] | type[SystemTick]) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_one_run_per_key_advanced_by_the_scheduler(
    client: TestClient, database: Database, clock: FakeClock, settings: Settings
) -> None:
    automation = _create(database, clock, EXPORT)
    url = f"/api/v1/system/automations/{automation}/runs"
    first = client.post(url, json={"key": "deploy-42"})
    assert first.status_code == 201, first.text
    assert first.json()["automation"] == "Nightly export"
    assert first.json()["state"] == "ready"
    again = client.post(url, json={"key": "deploy-42"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert _count(database, SystemRun) == 1
    assert _count(database, SystemTick) == 0  # the schedule's ticks are left alone
    assert client.post(url).status_code == 201  # no key: a new run each time
    SystemScheduler(database, clock, settings).run_until_idle()
    runs = client.get("/api/v1/system/runs").json()["items"]
    assert [r["state"] for r in runs] == ["done", "done"]
    assert runs[0]["last_job"]["status"] == "succeeded"


def test_refused_for_paused_contact_and_unknown_automations(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    paused = _create(database, clock, EXPORT)
    pausing = client.post(f"/api/v1/automations/{paused}/status", json={"status": "paused"})
    assert pausing.status_code == 200, pausing.text
    contact = _create(
        database,
        clock,
        {
            "name": "Welcome",
            "trigger": {"type": "tag_added", "tag": "new"},
            "steps": [{"id": "t", "action": "add_tag", "tag": "x"}],
        },
    )
    for automation, status, words in (
        (paused, 409, "paused"),
        (contact, 409, "not a system automation"),
        (999_999, 404, "does not exist"),
    ):
        answer = client.post(f"/api/v1/system/automations/{automation}/runs")
        assert answer.status_code == status and words in answer.text, answer.text
    bad = client.post(f"/api/v1/system/automations/{paused}/runs", json={"key": "a b"})
    assert bad.status_code == 422 and "key" in bad.text
    assert _count(database, SystemRun) == 0


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_the_cli_starts_a_run_once_per_key(
    cli: CliRunner, database: Database, clock: FakeClock
) -> None:
    _create(database, clock, EXPORT)
    first = cli.invoke(app, ["system", "run", "Nightly export", "--key", "k1"])
    assert first.exit_code == 0 and "started" in first.output, first.output
    again = cli.invoke(app, ["system", "run", "Nightly export", "--key", "k1"])
    assert again.exit_code == 0 and "already started" in again.output
    assert _count(database, SystemRun) == 1
    missing = cli.invoke(app, ["system", "run", "nope"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_racing_requests_with_one_key_start_one_run(database: Database, clock: FakeClock) -> None:
    automation = _create(database, clock, EXPORT)
    started: list[bool] = []

    def request() -> None:
        with database.session() as session:
            started.append(start_now(session, automation, key="same", now=clock.now())[1])

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(started) == [False, False, False, True]
    assert _count(database, SystemRun) == 1
