"""The `tidings` command line, run in-process against a real database."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tidings.auth.service import find_api_key
from tidings.cli import app
from tidings.config import get_settings
from tidings.contacts.models import Contact
from tidings.db.engine import Database


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_db_upgrade_is_idempotent(cli: CliRunner) -> None:
    result = cli.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output


def test_apikey_create_prints_a_working_key_once(cli: CliRunner, database: Database) -> None:
    result = cli.invoke(app, ["apikey", "create", "laptop"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    with database.session() as session:
        row = find_api_key(session, key)
        assert row is not None and row.name == "laptop"
        assert key not in (row.key_hash, row.prefix)


def test_import_and_export(cli: CliRunner, database: Database, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,first_name\nann@example.com,Ann\nnope,Bob\n")
    result = cli.invoke(app, ["contacts", "import", str(source), "--list", "News", "--tag", "Fair"])
    assert result.exit_code == 0, result.output
    assert "created 1, updated 0, unchanged 0, rejected 1" in result.output
    rejected = list(csv.reader((tmp_path / "people.rejected.csv").open()))
    assert rejected[1][0] == "3" and "email" in rejected[1][1]
    with database.session() as session:
        assert session.scalars(select(Contact.email)).all() == ["ann@example.com"]

    out = tmp_path / "out.csv"
    result = cli.invoke(app, ["contacts", "export", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["email"] == "ann@example.com" and rows[0]["tags"] == "Fair"


def test_import_reports_a_bad_header_clearly(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("mail,name\nann@example.com,Ann\n")
    result = cli.invoke(app, ["contacts", "import", str(source)])
    assert result.exit_code == 2
    assert "no 'email' column" in result.output


def test_lists_add_and_remove_segment(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,tags\na@example.com,VIP\nb@example.com,\n")
    assert cli.invoke(app, ["contacts", "import", str(source), "--list", "Main"]).exit_code == 0
    assert cli.invoke(app, ["contacts", "import", str(source.with_name("none.csv"))]).exit_code == 2
    result = cli.invoke(app, ["lists", "add-segment", "Main", '{"has_tag": "VIP"}'])
    assert result.exit_code == 0 and "0 contacts subscribed to Main" in result.output
    result = cli.invoke(app, ["lists", "remove-segment", "Main", '{"has_tag": "VIP"}'])
    assert result.exit_code == 0 and "1 contact unsubscribed from Main" in result.output
    result = cli.invoke(app, ["lists", "add-segment", "Nope", '{"has_tag": "VIP"}'])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_apikey_list_and_revoke(cli: CliRunner, database: Database) -> None:
    key = cli.invoke(app, ["apikey", "create", "ci"]).stdout.strip().splitlines()[0]
    listed = cli.invoke(app, ["apikey", "list"])
    assert listed.exit_code == 0, listed.output
    key_id, name, prefix, _, state = listed.stdout.strip().splitlines()[-1].split("\t")
    assert (name, state) == ("ci", "active") and key.startswith(prefix.rstrip("."))
    assert key not in listed.stdout
    revoked = cli.invoke(app, ["apikey", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    with database.session() as session:
        assert find_api_key(session, key) is None
    assert "revoked" in cli.invoke(app, ["apikey", "list"]).stdout
    missing = cli.invoke(app, ["apikey", "revoke", "999999"])
    assert missing.exit_code == 1 and "no API key 999999" in missing.output
