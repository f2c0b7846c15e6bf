"""A job killed with SIGKILL in the middle of its work (a real `tidings jobs run` process) is
found by the next runner and finished: every contact deleted once with one audit row, every
row imported once, one export file and no temporary one."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from tests.processes import COMMAND, tidings_env
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.models import HygieneAudit, JobRun

from .helpers import add_contacts

CONTACTS = 1_000


def _scalar(database: Database, query: object) -> int:
    # A read-only transaction: never queued behind the job's SQLite write lock.
    with database.read_session() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def _kill_when(
    database_url: str, settings: Settings, tmp: Path, spec: str, ready: Callable[[], bool]
) -> None:
    """Run `tidings jobs run` on `spec` and SIGKILL it as soon as `ready()` holds."""
    (tmp / "job.yaml").write_text(spec)
    env = tidings_env(
        database_url=database_url,
        secret_file=str(tmp / "s"),
        export_dir=str(settings.export_dir),
        import_dir=str(settings.import_dir),
        job_batch_size="10",  # many small commits: the kill lands mid-job even on a loaded machine
    )
    process = subprocess.Popen(
        [*COMMAND, "jobs", "run", str(tmp / "job.yaml")],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "job.log").open("ab"),
    )
    give_up = time.monotonic() + 30
    while not ready() and process.poll() is None and time.monotonic() < give_up:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ready(), (tmp / "job.log").read_text()


def _resume(database: Database, clock: FakeClock, settings: Settings) -> JobRun:
    settings.job_batch_size = 500
    [resumed] = runner.resume_unfinished(database, clock=clock, settings=settings)
    return resumed


def test_a_killed_hygiene_deletion_finishes_once(
    database: Database, database_url: str, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    add_contacts(database, clock, CONTACTS, tags=["old"])
    add_contacts(database, clock, 10, prefix="keep")
    left = select(func.count()).select_from(Contact)
    spec = "kind: hygiene\naction: delete\nsegment: {has_tag: old}\nreason: stale\n"
    _kill_when(
        database_url,
        settings,
        tmp_path,
        spec,
        lambda: _scalar(database, left) < CONTACTS - 100,
    )
    assert _scalar(database, left) > 10, "the job finished before it was killed"
    resumed = _resume(database, clock, settings)
    assert resumed.status == "succeeded" and resumed.attempts == 2
    assert resumed.rows_written == CONTACTS
    assert _scalar(database, left) == 10
    deleted = select(func.count()).select_from(Activity).where(Activity.type == "contact_deleted")
    assert _scalar(database, deleted) == CONTACTS
    assert _scalar(database, select(func.count()).select_from(HygieneAudit)) == 1


def test_a_killed_import_imports_each_row_once(
    database: Database, database_url: str, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    assert settings.import_dir is not None
    settings.import_dir.mkdir()
    rows = "".join(f"r{i}@example.com\n" for i in range(CONTACTS))
    (settings.import_dir / "big.csv").write_text("email\n" + rows)
    created = select(func.count()).select_from(Activity).where(Activity.type == "contact_created")
    _kill_when(
        database_url, settings, tmp_path, "kind: import\n", lambda: _scalar(database, created) > 100
    )
    assert _scalar(database, created) < CONTACTS, "the job finished before it was killed"
    resumed = _resume(database, clock, settings)
    assert resumed.status == "succeeded"
    assert _scalar(database, created) == CONTACTS  # no row created twice
    assert _scalar(database, select(func.count()).select_from(Contact)) == CONTACTS
    assert (settings.import_dir / "processed" / "big.csv").exists()
    assert not (settings.import_dir / "big.csv").exists()


def test_a_killed_export_leaves_one_file(
    database: Database, database_url: str, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    add_contacts(database, clock, CONTACTS)
    started = select(func.count()).select_from(JobRun).where(JobRun.status == "running")
    _kill_when(
        database_url,
        settings,
        tmp_path,
        "kind: export\nexport: {type: contacts}\n",
        lambda: _scalar(database, started) == 1,
    )
    resumed = _resume(database, clock, settings)
    assert resumed.status == "succeeded" and resumed.rows_written == CONTACTS
    assert [p.name for p in settings.export_dir.iterdir()] == [resumed.output_file]
    lines = (settings.export_dir / (resumed.output_file or "")).read_text().splitlines()
    assert len(lines) == CONTACTS + 1
