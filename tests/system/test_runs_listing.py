"""Listing system runs: `GET /api/v1/system/runs` (filters, keyset pages, newest first, bad
input a problem naming the parameter) and `tidings system runs [--json]`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tidings.automations.service import create_automation
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.db.engine import Database
from tidings.system.models import SystemRun


def _automation(session: Session, clock: FakeClock, name: str) -> int:
    steps = [{"id": "tell", "action": "notify", "to": "ops@example.com", "subject": "t"}]
    data = {"kind": "system", "name": name, "trigger": {"type": "schedule", "every": 1}}
    return create_automation(session, {**data, "steps": steps}, now=clock.now()).id


@pytest.fixture
def runs(database: Database, clock: FakeClock) -> None:
    """Five runs of `nightly` (the last two failed) and one of `weekly`, a minute apart."""
    with database.session() as session:
        ids = {name: _automation(session, clock, name) for name in ("nightly", "weekly")}
        for i, (name, state) in enumerate(
            [("nightly", "done")] * 3 + [("weekly", "done")] + [("nightly", "failed")] * 2
        ):
            at = clock.now() + timedelta(minutes=i)
            session.add(
                SystemRun(
                    automation_id=ids[name],
                    version=1,
                    tick_key=f"schedule:{name}:{i}",
                    state=state,
                    step=None,
                    wake_at=at,
                    lease_until=None,
                    last_job=None,
                    log=[{"step": "tell"}],
                    started_at=at,
                    ended_at=at,
                )
            )


@pytest.mark.usefixtures("runs")
def test_filters_and_keyset_pages(client: TestClient, clock: FakeClock) -> None:
    page = client.get("/api/v1/system/runs", params={"automation": "nightly", "limit": 3}).json()
    assert [r["state"] for r in page["items"]] == ["failed", "failed", "done"]
    assert page["items"][0]["automation"] == "nightly"
    rest = client.get(
        "/api/v1/system/runs",
        params={"automation": "nightly", "limit": 3, "cursor": page["next_cursor"]},
    ).json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    seen = [r["id"] for r in page["items"] + rest["items"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 5
    failed = client.get("/api/v1/system/runs", params={"state": "failed"}).json()["items"]
    assert len(failed) == 2
    since = (clock.now() + timedelta(minutes=3)).isoformat()
    recent = client.get("/api/v1/system/runs", params={"since": since}).json()["items"]
    assert [r["automation"] for r in recent] == ["nightly", "nightly", "weekly"]


def test_bad_filters_are_problems_naming_the_parameter(client: TestClient) -> None:
    for params, name in [
        ({"state": "sleeping"}, "state"),
        ({"limit": 0}, "limit"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"since": "2026-03-01T00:00:00"}, "since"),
    ]:
        response = client.get("/api/v1/system/runs", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
        assert name in response.text


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.mark.usefixtures("runs")
def test_the_cli_lists_runs_as_a_table_or_json_lines(cli: CliRunner) -> None:
    table = cli.invoke(app, ["system", "runs"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "nightly" in table.output and "weekly" in table.output
    lines = cli.invoke(app, ["system", "runs", "--json", "--state", "failed"]).output.splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["failed", "failed"]
    bad = cli.invoke(app, ["system", "runs", "--state", "sleeping"])
    assert bad.exit_code == 2 and "state: one of" in bad.output
