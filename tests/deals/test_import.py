"""CSV import and export of deals, and the deals, pipelines and users commands."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.deals.helpers import Crm, ok
from tidings.cli import app
from tidings.config import get_settings


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_users_and_pipelines_commands(cli: CliRunner) -> None:
    result = cli.invoke(app, ["users", "create", "Ann@Example.com", "--name", "Ann", "--admin"])
    assert result.exit_code == 0, result.output
    assert "ann@example.com, admin" in result.output
    assert cli.invoke(app, ["users", "create", "ann@example.com", "--name", "A"]).exit_code == 2
    assert cli.invoke(app, ["users", "create", "bob@example.com", "--name", "Bob"]).exit_code == 0
    assert cli.invoke(app, ["users", "deactivate", "bob@example.com"]).exit_code == 0
    listed = cli.invoke(app, ["users", "list"]).stdout
    assert "ann@example.com" in listed and "bob@example.com" not in listed
    assert "deactivated" in cli.invoke(app, ["users", "list", "--all"]).stdout
    assert cli.invoke(app, ["users", "deactivate", "nobody@example.com"]).exit_code == 2
    result = cli.invoke(
        app,
        [
            "pipelines",
            "create",
            "Sales",
            "--currency",
            "eur",
            "--stage",
            "Lead:10",
            "--stage",
            "Won soon:90",
        ],
    )
    assert result.exit_code == 0, result.output
    listed = cli.invoke(app, ["pipelines", "list"]).stdout
    assert "Sales\tEUR" in listed and "Won soon\t90%" in listed
    result = cli.invoke(app, ["pipelines", "create", "X", "--currency", "ABC", "--stage", "A"])
    assert result.exit_code == 2 and "ISO 4217" in result.output


def test_import_reports_rejected_rows_and_export_imports_unchanged(
    crm: Crm, cli: CliRunner, tmp_path: Path
) -> None:
    ok(crm.client.post("/api/v1/deal-fields", json={"key": "seats", "type": "number"}), 201)
    source = tmp_path / "deals.csv"
    source.write_text(
        "title,value,pipeline,stage,owner,contact,contacts,status,expected_close,seats\n"
        "Alpha,100,Sales,Lead,ann@example.com,c0@example.com,c1@example.com|c2@example.com,open,2026-05-01,12\n"
        "Beta,-5,Sales,Lead,,c0@example.com,,open,,\n"
        "Gamma,100,Sales,Nope,,c0@example.com,,open,,\n"
        "Delta,100,Sales,Lead,,nobody@example.com,,open,,\n"
        "Ragged,1,Sales\n"
        "Eps,7,Sales,Proposal,,C1@example.com,,won,,\n"
        "Zeta,x,Sales,Lead,,c0@example.com,,open,,\n"
        "Eta,1,Sales,Lead,,c0@example.com,,open,,many\n"
    )
    result = cli.invoke(app, ["deals", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "created 2, updated 0, unchanged 0, rejected 6" in result.output
    rejected = list(csv.reader((tmp_path / "deals.rejected.csv").open()))
    reasons = {row[0]: row[1] for row in rejected[1:]}
    assert reasons["3"] == "line 3: value: must not be negative"
    assert reasons["4"] == "line 4: stage: the pipeline has no stage 'Nope'"
    assert "nobody@example.com does not exist" in reasons["5"]
    assert reasons["6"] == "line 6: has 3 fields, the header has 10"
    assert "not a whole number" in reasons["8"]
    assert "fields.seats" in reasons["9"]
    deals = ok(crm.client.get("/api/v1/deals"))["items"]
    alpha, eps = deals
    assert alpha["contact_ids"] == crm.contacts and alpha["fields"] == {"seats": 12}
    assert alpha["owner_id"] == crm.users[0] and alpha["expected_close"] == "2026-05-01"
    assert (eps["status"], eps["stage_id"], eps["contact_id"]) == (
        "won",
        crm.stages[2],
        crm.contacts[1],
    )

    exported = tmp_path / "out.csv"
    result = cli.invoke(app, ["deals", "export", str(exported)])
    assert result.exit_code == 0 and "exported 2 deals" in result.output
    rows = list(csv.DictReader(exported.open()))
    assert rows[0]["contacts"] == "c1@example.com|c2@example.com" and rows[0]["seats"] == "12"
    result = cli.invoke(app, ["deals", "import", str(exported)])
    assert result.exit_code == 0, result.output
    assert "created 0, updated 0, unchanged 2, rejected 0" in result.output
    assert ok(crm.client.get("/api/v1/deals"))["items"] == deals

    # an edited export updates, with the same activities as the API
    rows[0]["stage"] = "Qualified"
    rows[1]["id"] = "999"
    with exported.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = cli.invoke(app, ["deals", "import", str(exported)])
    assert "created 0, updated 1, unchanged 0, rejected 1" in result.output
    assert crm.timeline(alpha["id"])[0]["type"] == "deal_stage_changed"
    assert "deal 999 does not exist" in (tmp_path / "out.rejected.csv").read_text()


def test_import_refuses_a_bad_header(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("name,price\nA,1\n")
    result = cli.invoke(app, ["deals", "import", str(source)])
    assert result.exit_code == 2 and "no 'title' column" in result.output
    source.write_text("title,price\nA,1\n")
    result = cli.invoke(app, ["deals", "import", str(source)])
    assert result.exit_code == 2 and "unknown column(s) 'price'" in result.output
    source.write_text("")
    result = cli.invoke(app, ["deals", "import", str(source)])
    assert result.exit_code == 2 and "'title' column" in result.output
