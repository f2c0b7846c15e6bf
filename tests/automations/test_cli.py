"""`tidings automations validate|simulate|enrol`, `tidings templates install`, `tidings worker --once`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.automations.helpers import make_contacts, tags_of
from tests.automations.test_api import DRIP
from tests.automations.test_definition import ALL_AT_ONCE
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.contacts import service as contacts
from tidings.contacts.policy import may_send
from tidings.db.engine import Database
from tidings.segments.service import save_segment

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
    scenario.write_text(
        "templates: [welcome, nudge]\ncontacts: 20\n"
        "events:\n  - {day: 1, type: email_opened, percent: 50}\n"
    )
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
    assert "refused (not sent)" not in result.output


def test_simulate_refuses_what_the_live_engine_refuses(cli: CliRunner, tmp_path: Path) -> None:
    """The simulation queues through the outbox's one writer: a template that does not exist
    and a contact whose status forbids automation mail are refused, with their reasons, and
    never counted as sent."""
    definition = tmp_path / "welcome.yaml"
    definition.write_text(WELCOME)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "templates: [nudge]\n"
        "contacts:\n"
        + "".join(f"  - {{email: s{i}@example.com}}\n" for i in range(5))
        + "  - {email: gone@example.com, status: unsubscribed}\n"
    )
    result = cli.invoke(
        app,
        ["automations", "simulate", str(definition), "--days", "3", "--scenario", str(scenario)],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[1].endswith("- (6)")  # day 1: nothing to send, six refused
    assert "welcome:" not in result.output
    assert lines[2].endswith("nudge: 5 (1)")  # day 2: the unsubscribed contact is refused
    refusals = lines[lines.index("refused (not sent):") + 1 :]
    assert [line.split(None, 1) for line in refusals] == [
        ["6", "template 'welcome' does not exist"],
        ["1", "nudge: " + may_send("unsubscribed", "automation").reason],
    ]


def test_create_warns_about_what_the_database_lacks(cli: CliRunner, tmp_path: Path) -> None:
    """`automations create` warns, like validate --check-database, on stderr."""
    definition = tmp_path / "welcome.yaml"
    definition.write_text(WELCOME)
    result = cli.invoke(app, ["automations", "create", str(definition)])
    assert result.exit_code == 0, result.output
    assert "automation 1 'Welcome' version 1" in result.stdout
    assert "warning: steps[0].template: template 'welcome' does not exist" in result.stderr
    assert "warning: steps[3].template: template 'nudge' does not exist" in result.stderr
    checked = cli.invoke(app, ["automations", "validate", str(definition), "--check-database"])
    assert checked.stderr == result.stderr


def test_validate_prints_every_problem_at_once(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(ALL_AT_ONCE)
    result = cli.invoke(app, ["automations", "validate", str(bad)])
    assert result.exit_code == 2
    for expected in (
        "steps[0].tag: Field required",
        "goals[0].jump_to: unknown step id 'nowhere'",
        "steps[2]: step 'orphan' is unreachable",
        "steps[0]: loop without a wait: a -> b -> a",
    ):
        assert expected in result.output


def test_install_engagement_tagging_and_run_the_worker_once(
    cli: CliRunner, database: Database, clock: FakeClock
) -> None:
    ids = make_contacts(database, clock, 3)
    result = cli.invoke(app, ["templates", "install", "engagement-tagging", "--all-engaged"])
    assert result.exit_code == 0, result.output
    assert "enrolled 3 contacts" in result.output
    again = cli.invoke(app, ["templates", "install", "engagement-tagging"])
    assert again.exit_code == 2 and "already exists" in again.output
    worked = cli.invoke(app, ["worker", "--once"])
    assert worked.exit_code == 0, worked.output
    assert tags_of(database, ids[0]) == {"Engaged", "Recent activity"}
    unknown = cli.invoke(app, ["templates", "install", "nope"])
    assert unknown.exit_code == 2


def test_install_seeds_from_history_by_default(
    cli: CliRunner, database: Database, clock: FakeClock
) -> None:
    """The CLI runs on the real clock: contacts created (and never engaged) long before it
    are Inactive at once, without a worker pass; --segment takes a saved segment's name."""
    ids = make_contacts(database, clock, 3)
    with database.session() as session:
        contact = contacts.get_contact(session, ids[0])
        contacts.add_tag(session, contact, "Old", now=clock.now(), cause="api")
        save_segment(session, "Old ones", {"has_tag": "Old"}, now=clock.now())
    result = cli.invoke(
        app, ["templates", "install", "engagement-tagging", "--segment", "Old ones"]
    )
    assert result.exit_code == 0, result.output
    assert "enrolled 1 contact\n" in result.stdout
    assert tags_of(database, ids[0]) == {"Old", "Inactive"}
    assert tags_of(database, ids[1]) == set()


def test_list_show_pause_resume_end_runs_delete(
    cli: CliRunner, database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ids = make_contacts(database, clock, 3)
    with database.session() as session:
        contact = contacts.get_contact(session, ids[0])
        contacts.add_tag(session, contact, "Pick", now=clock.now(), cause="api")
        save_segment(session, "Picked", {"has_tag": "Pick"}, now=clock.now())
    definition = tmp_path / "drip.yaml"
    definition.write_text(DRIP)
    assert cli.invoke(app, ["automations", "create", str(definition)]).exit_code == 0
    # --segment takes a saved segment's name, like contacts export does (or JSON).
    enrolled = cli.invoke(app, ["automations", "enrol", "Drip", "--segment", "Picked"])
    assert enrolled.exit_code == 0, enrolled.output
    assert enrolled.stdout == "enrolled 1 contact\n"
    enrolled = cli.invoke(
        app, ["automations", "enrol", "Drip", "--segment", '{"lacks_tag": "Pick"}']
    )
    assert enrolled.stdout == "enrolled 2 contacts\n"
    missing = cli.invoke(app, ["automations", "enrol", "Drip", "--segment", "Nope"])
    assert missing.exit_code == 2 and "segment 'Nope' does not exist" in missing.stderr
    assert cli.invoke(app, ["worker", "--once", "--no-sender"]).exit_code == 0

    listed = cli.invoke(app, ["automations", "list"])
    assert listed.stdout.splitlines()[1].split() == ["1", "active", "1", "3", "Drip"]
    as_json = json.loads(cli.invoke(app, ["automations", "list", "--json"]).stdout)
    assert as_json == [
        {"id": 1, "name": "Drip", "status": "active", "version": 1, "active_enrolments": 3}
    ]
    shown = cli.invoke(app, ["automations", "show", "Drip"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "automation 1 'Drip': active, version 1 (versions 1)"
    assert lines[1] == "runs: active 3"
    assert lines[3].split() == ["hello", "add_tag", "0", "3", "0", "0", "0"]
    assert lines[4].split() == ["pause", "wait", "3", "0", "0", "0", "0"]
    assert "  - id: hello" in shown.stdout or "- id: hello" in shown.stdout
    shown_json = cli.invoke(app, ["automations", "show", "1", "--json"])
    assert shown_json.exit_code == 0, shown_json.output
    by_id = json.loads(shown_json.stdout)
    assert by_id["definition"]["name"] == "Drip" and by_id["steps"][1]["waiting"] == 3

    assert (
        cli.invoke(app, ["automations", "pause", "Drip"]).stdout == "automation 1 'Drip' paused\n"
    )
    refused = cli.invoke(app, ["automations", "delete", "Drip"])
    assert refused.exit_code == 2 and "end their runs first" in refused.stderr
    one = cli.invoke(
        app, ["automations", "end-runs", "Drip", "--contact", str(ids[0]), "--reason", "moved"]
    )
    assert one.exit_code == 0, one.output
    assert one.stdout == "ended 1 run (pause: 1)\n"
    wrong = cli.invoke(app, ["automations", "end-runs", "Drip", "--step", "nope"])
    assert wrong.exit_code == 2 and "step: 'nope' is not a step" in wrong.stderr
    rest = cli.invoke(app, ["automations", "end-runs", "Drip", "--step", "pause", "--json"])
    assert json.loads(rest.stdout) == {"ended": 2, "by_step": {"pause": 2}}
    assert cli.invoke(app, ["automations", "resume", "1"]).stdout == "automation 1 'Drip' active\n"
    deleted = cli.invoke(app, ["automations", "delete", "Drip"])
    assert deleted.exit_code == 0 and deleted.stdout == "deleted automation 1 'Drip'\n"
    gone = cli.invoke(app, ["automations", "show", "Drip"])
    assert gone.exit_code == 2 and "does not exist" in gone.stderr
