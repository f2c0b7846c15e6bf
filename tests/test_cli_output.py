"""Issue 13: results on stdout (`--json` for scripts), errors on stderr, counted nouns, no
progress bar after a fatal header error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.config import get_settings


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_a_fatal_header_error_goes_to_stderr_with_no_progress_bar(
    cli: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,shoe_size\na@example.com,9\n")
    result = cli.invoke(app, ["contacts", "import", str(source)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "unknown column" in result.stderr
    assert "importing" not in result.stderr and "bytes" not in result.stderr


def test_import_results_go_to_stdout_and_as_json(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email\na@example.com\nnot-an-email\n")
    result = cli.invoke(app, ["contacts", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "created 1, updated 0, unchanged 0, rejected 1" in result.stdout
    assert "rejected rows written to" in result.stdout
    again = cli.invoke(app, ["contacts", "import", "--json", str(source)])
    report = json.loads(again.stdout)
    assert report["unchanged"] == 1 and report["rejected"] == 1
    events = tmp_path / "events.ndjson"
    events.write_text(
        '{"type": "purchase", "email": "a@example.com", "amount": 3, "event_id": "e1"}\n'
    )
    stored = cli.invoke(app, ["events", "import", "--json", str(events)])
    assert json.loads(stored.stdout)["stored"] == 1, stored.output


def test_counts_are_singular_for_one(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,lists\na@example.com,Main\n")
    cli.invoke(app, ["contacts", "import", str(source)])
    exported = cli.invoke(app, ["contacts", "export", str(tmp_path / "out.csv")])
    assert f"exported 1 contact to {tmp_path / 'out.csv'}" in exported.stdout
    to_stdout = cli.invoke(app, ["contacts", "export", "-"])
    assert to_stdout.stdout.startswith("email,") and "exported 1 contact\n" in to_stdout.stderr
    removed = cli.invoke(app, ["lists", "remove-segment", "Main", '{"status": "subscribed"}'])
    assert "1 contact unsubscribed from Main" in removed.stdout
    pruned = cli.invoke(app, ["events", "prune", "--older-than", "1"])
    assert "pruned 0 events older than 1 day" in pruned.stdout


def test_listings_as_json(cli: CliRunner) -> None:
    assert cli.invoke(app, ["apikey", "create", "laptop"]).exit_code == 0
    keys = json.loads(cli.invoke(app, ["apikey", "list", "--json"]).stdout)
    assert [k["name"] for k in keys] == ["laptop"] and keys[0]["revoked_at"] is None
    created = cli.invoke(
        app, ["pipelines", "create", "Sales", "--currency", "EUR", "--stage", "Lead:10"]
    )
    assert "created pipeline" in created.stdout
    pipelines = json.loads(cli.invoke(app, ["pipelines", "list", "--json"]).stdout)
    assert pipelines[0]["stages"][0] == {
        "id": pipelines[0]["stages"][0]["id"],
        "title": "Lead",
        "probability": 10,
    }
    cli.invoke(app, ["users", "create", "ann@example.com", "--name", "Ann"])
    users = json.loads(cli.invoke(app, ["users", "list", "--json"]).stdout)
    assert users[0]["email"] == "ann@example.com" and users[0]["active"] is True
    secrets = json.loads(cli.invoke(app, ["secret", "list", "--json"]).stdout)
    assert isinstance(secrets, list)
