"""The drop-folder import: each content once, moved to processed/ or failed/, rejected rows
beside the file; an interrupted import finishes without doing anything twice."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.models import ImportedFile, JobRun

from .helpers import contact_count, count, run

IMPORT = {"kind": "import", "list": "Drop"}


def _drop(settings: Settings, name: str, text: str) -> Path:
    assert settings.import_dir is not None
    settings.import_dir.mkdir(exist_ok=True)
    path = settings.import_dir / name
    path.write_text(text)
    return path


def test_new_files_are_imported_once_and_moved(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    _drop(settings, "a.csv", "email,first_name\na@example.com,Ann\nnot-an-address,X\n")
    _drop(settings, "b.csv", "email\nb@example.com\n")
    done = run(database, clock, settings, IMPORT)
    assert done.status == "partial"  # one row rejected
    assert (done.rows_read, done.rows_written, done.rows_rejected) == (3, 2, 1)
    assert done.errors[0]["item"] == "a.csv"
    drop = settings.import_dir
    assert drop is not None
    assert sorted(p.name for p in (drop / "processed").iterdir()) == [
        "a.csv",
        "a.rejected.csv",
        "b.csv",
    ]
    assert "not-an-address" in (drop / "processed" / "a.rejected.csv").read_text()
    assert contact_count(database) == 2
    # The same content again, under another name: skipped, not imported twice.
    _drop(settings, "b-again.csv", "email\nb@example.com\n")
    again = run(database, clock, settings, IMPORT)
    assert again.status == "succeeded" and again.rows_read == 0
    assert again.state["files"]["b-again.csv"]["status"] == "duplicate"
    assert count(database, ImportedFile) == 2


def test_a_file_that_is_not_csv_goes_to_failed_with_its_reason(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    _drop(settings, "photo.jpg", "\xff\xd8")
    _drop(settings, "nohead.csv", "name\nAnn\n")
    done = run(database, clock, settings, IMPORT)
    assert done.status == "partial" and done.rows_rejected == 2
    failed = (settings.import_dir or Path()) / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        "nohead.csv",
        "nohead.csv.error.txt",
        "photo.jpg",
        "photo.jpg.error.txt",
    ]
    assert "not a CSV" in (failed / "photo.jpg.error.txt").read_text()
    assert "email" in (failed / "nohead.csv.error.txt").read_text()


def test_no_drop_folder_is_a_clear_error(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    settings.import_dir = None
    done = run(database, clock, settings, IMPORT)
    assert done.status == "failed" and "TIDINGS_IMPORT_DIR" in (done.detail or "")


def test_an_interrupted_import_finishes_its_file_once(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    _drop(settings, "a.csv", "email\na@example.com\nb@example.com\n")
    first = run(database, clock, settings, IMPORT)
    # As if killed after the rows were written, before the file was moved and marked done:
    # the file is back in the folder and its claim belongs to a running run.
    processed = (settings.import_dir or Path()) / "processed" / "a.csv"
    processed.rename((settings.import_dir or Path()) / "a.csv")
    with database.session() as session:
        session.execute(update(ImportedFile).values(status="importing"))
        session.execute(
            update(JobRun).values(status="running", lease_owner="gone:1:1", lease_until=None)
        )
    [resumed] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert resumed.id == first.id and resumed.status == "succeeded"
    assert count(database, Contact) == 2
    assert count(database, ImportedFile, ImportedFile.status == "processed") == 1
    assert processed.exists()
