"""`tidings jobs run|runs`, and the jobs side of `tidings worker`: interrupted runs resumed,
the drop folder polled, old exports deleted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.models import JobRun
from tidings.jobs.specs import parse_spec
from tidings.jobs.worker import JobsWorker

from .helpers import add_contacts, contact_count


@pytest.fixture
def cli(
    database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("TIDINGS_EXPORT_DIR", str(settings.export_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_jobs_run_and_runs(
    cli: CliRunner, database: Database, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    add_contacts(database, clock, 2)
    spec = tmp_path / "job.yaml"
    spec.write_text("kind: export\nexport:\n  type: contacts\nname: all\n")
    result = cli.invoke(app, ["jobs", "run", str(spec)])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "written 2" in result.output
    assert (settings.export_dir / "all-1.csv").exists()
    listed = cli.invoke(app, ["jobs", "runs", "--json"])
    [run] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert run["id"] == 1 and run["counts"]["written"] == 2
    assert cli.invoke(app, ["jobs", "runs", "--failed", "--json"]).stdout == ""
    table = cli.invoke(app, ["jobs", "runs"])
    assert table.exit_code == 0 and "export" in table.stdout


def test_a_bad_spec_file_names_the_file_and_path(cli: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: export\nexport: {type: contacts}\nformat: xml\n")
    result = cli.invoke(app, ["jobs", "run", str(spec)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "format" in result.output
    spec.write_text("kind: hygiene\naction: delete\nsegment: {has_tag: x}\n")
    assert "reason" in cli.invoke(app, ["jobs", "run", str(spec)]).output


def test_a_report_run(cli: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("kind: export\nexport: {type: report, report: engagement}\n")
    assert cli.invoke(app, ["jobs", "run", str(spec)]).exit_code == 0


def test_the_worker_resumes_runs_polls_the_drop_folder_and_cleans_exports(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 1)
    with database.session() as session:
        queued = runner.create_run(
            session,
            parse_spec({"kind": "export", "export": {"type": "contacts"}}),
            clock=clock,
            requested_by="api",
        )
    assert settings.import_dir is not None
    settings.import_dir.mkdir()
    (settings.import_dir / "new.csv").write_text("email\nnew@example.com\n")
    settings.export_dir.mkdir()
    old = settings.export_dir / "old.csv"
    old.write_text("x")
    stamp = (clock.now() - timedelta(days=40)).timestamp()
    os.utime(old, (stamp, stamp))
    JobsWorker(database, clock, settings).poll()
    with database.session() as session:
        runs = {r.id: r for r in session.query(JobRun)}
    assert runs[queued.id].status == "succeeded"
    assert [r.kind for r in runs.values()] == ["export", "import"]
    assert contact_count(database) == 2
    assert not old.exists()
    # Nothing new: the next poll makes no run.
    JobsWorker(database, clock, settings).poll()
    with database.session() as session:
        assert session.query(JobRun).count() == 2
