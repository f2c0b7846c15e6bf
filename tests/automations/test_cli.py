"""`tidings automations validate|simulate|enrol`, `tidings templates install`, `tidings worker --once`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.automations.helpers import make_contacts, tags_of
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.db.engine import Database

WELCOME = """
name: Welcome
steps:
  - {id: hello, action: send_email, template: welcome}
  - {id: w, wait: {days: 2}}
  - {id: check, if: {event: {type: email_opened, within_days: 3}}, then: thanks, else: nudge}
  - {id: nudge, action: send_email, template: nudge, next: fin}
  - {id: thanks, action: add_tag, tag: Opened}
  - {id: fin, end: true}
"""


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_validate_reports_every_problem_with_its_path(cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(WELCOME)
    result = cli.invoke(app, ["automations", "validate", str(good)])
    assert result.exit_code == 0 and "valid (6 steps)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        WELCOME.replace("next: fin", "next: fni").replace("template: nudge", "templat: nudge")
    )
    result = cli.invoke(app, ["automations", "validate", str(bad)])
    assert result.exit_code == 2
    assert "steps[3].templat: unknown key" in result.output


def test_simulate_prints_each_day_from_a_scenario(cli: CliRunner, tmp_path: Path) -> None:
    definition = tmp_path / "welcome.yaml"
    definition.write_text(WELCOME)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("contacts: 20\nevents:\n  - {day: 1, type: email_opened, percent: 50}\n")
    result = cli.invoke(
        app,
        ["automations", "simulate", str(definition), "--days", "4", "--scenario", str(scenario)],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["day", "hello", "w"]
    assert len(lines) == 5
    assert "welcome: 20" in lines[1]
    assert "nudge:" in result.output  # those who did not open get the nudge on day 2
    assert lines[-1].split()[-4] == "20"  # all completed


def test_install_engagement_tagging_and_run_the_worker_once(
    cli: CliRunner, database: Database, clock: FakeClock
) -> None:
    ids = make_contacts(database, clock, 3)
    result = cli.invoke(app, ["templates", "install", "engagement-tagging"])
    assert result.exit_code == 0, result.output
    assert "enrolled 3 contacts" in result.output
    again = cli.invoke(app, ["templates", "install", "engagement-tagging"])
    assert again.exit_code == 2 and "already exists" in again.output
    worked = cli.invoke(app, ["worker", "--once"])
    assert worked.exit_code == 0, worked.output
    assert tags_of(database, ids[0]) == {"Engaged", "Recent activity"}
    unknown = cli.invoke(app, ["templates", "install", "nope"])
    assert unknown.exit_code == 2
