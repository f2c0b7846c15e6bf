"""Exports: contacts re-import unchanged, raw events as CSV or NDJSON (gzip), reports, an
interrupted export leaves one file, retention deletes old files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from datetime import timedelta
from pathlib import Path

from tidings.activities.service import record
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.catalog import create_field
from tidings.contacts.importer import import_contacts
from tidings.contacts.schemas import FieldIn
from tidings.db.engine import Database
from tidings.jobs import runner
from tidings.jobs.export import clean_exports

from .helpers import add_contacts, add_template, run


def test_contacts_of_a_segment_re_import_unchanged(
    database: Database, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    add_contacts(database, clock, 3, tags=["vip", "early"], lists=["News"], first_name="Ann")
    add_contacts(database, clock, 2, prefix="d")
    spec = {
        "kind": "export",
        "export": {"type": "contacts", "segment": {"has_tag": "vip"}},
        "name": "vips",
    }
    done = run(database, clock, settings, spec)
    assert done.status == "succeeded" and done.rows_written == 3
    path = settings.export_dir / (done.output_file or "")
    assert path.name == f"vips-{done.id}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == ["email", "first_name", "last_name", "phone", "status", "tags", "lists"]
    assert rows[1] == ["c0@example.com", "Ann", "", "", "subscribed", "early|vip", "News"]
    assert [p.name for p in settings.export_dir.iterdir()] == [path.name]  # no temp file left
    with path.open("rb") as stream:
        summary = import_contacts(
            database, stream, clock=clock, rejected_path=tmp_path / "rejected.csv"
        )
    assert (summary.unchanged, summary.rejected, summary.created) == (3, 0, 0)


def _events(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        for i, kind in enumerate(["email_opened", "link_clicked", "email_opened"]):
            record(session, i + 1, kind, "tracking", clock.now(), {"n": i, "text": 'a,"b"'})
        record(session, 9, "email_opened", "tracking", clock.now() - timedelta(days=40), {})


def test_raw_events_of_a_window_and_types_as_csv(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    _events(database, clock)
    window = {
        "since": (clock.now() - timedelta(days=30)).isoformat(),
        "until": (clock.now() + timedelta(seconds=1)).isoformat(),
    }
    spec = {"kind": "export", "export": {"type": "events", "types": ["email_opened"], **window}}
    done = run(database, clock, settings, spec)
    rows = list(csv.DictReader((settings.export_dir / (done.output_file or "")).open()))
    assert [r["contact_id"] for r in rows] == ["1", "3"]
    assert rows[0]["occurred_at"].startswith("2026-03-02T09:00:00") and rows[0]["type"]
    assert json.loads(rows[0]["data"]) == {"n": 0, "text": 'a,"b"'}


def test_raw_events_as_gzipped_ndjson(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    _events(database, clock)
    window = {
        "since": (clock.now() - timedelta(days=30)).isoformat(),
        "until": (clock.now() + timedelta(seconds=1)).isoformat(),
    }
    spec = {"kind": "export", "export": {"type": "events", **window}}
    done = run(database, clock, settings, {**spec, "format": "ndjson", "gzip": True})
    assert (done.output_file or "").endswith(".ndjson.gz")
    with gzip.open(settings.export_dir / (done.output_file or ""), "rt") as lines:
        events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["email_opened", "link_clicked", "email_opened"]
    assert events[1]["data"] == {"n": 1, "text": 'a,"b"'} and events[1]["machine"] is False


def test_reports(database: Database, clock: FakeClock, settings: Settings) -> None:
    add_contacts(database, clock, 2, lists=["News"])
    add_template(database, clock)
    send = run(database, clock, settings, {"kind": "send", "template": "news", "list": "News"})
    broadcast_id = send.state["broadcast_id"]
    spec = {"kind": "export", "export": {"type": "report", "report": "broadcast", "id": 1}}
    spec["export"]["id"] = broadcast_id
    done = run(database, clock, settings, spec)
    rows = dict(csv.reader((settings.export_dir / (done.output_file or "")).open()))
    assert rows["total"] == "2" and rows["queued"] == "2" and rows["opened"] == "0"
    engagement = {"kind": "export", "export": {"type": "report", "report": "engagement"}}
    assert run(database, clock, settings, engagement).status == "succeeded"
    missing = {"kind": "export", "export": {"type": "report", "report": "automation", "id": 7}}
    failed = run(database, clock, settings, missing)
    assert failed.status == "failed" and "export.id" in (failed.detail or "")


def test_an_export_renamed_before_the_crash_is_not_written_twice(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    add_contacts(database, clock, 2)
    first = run(database, clock, settings, {"kind": "export", "export": {"type": "contacts"}})
    assert first.output_file
    # The same run resumed (its state names the file, already in place): no second file.
    with database.session() as session:
        row = session.get(type(first), first.id)
        assert row is not None
        row.status, row.lease_owner = "running", "gone-host:1:1"
        row.lease_until = clock.now()
    [again] = runner.resume_unfinished(database, clock=clock, settings=settings)
    assert again.status == "succeeded" and again.output_file == first.output_file
    assert len(list(settings.export_dir.iterdir())) == 1


def test_retention_deletes_old_files(clock: FakeClock, settings: Settings) -> None:
    settings.export_dir.mkdir()
    old, new = settings.export_dir / "old.csv", settings.export_dir / "new.csv"
    old.write_text("x")
    new.write_text("y")
    stamp = (clock.now() - timedelta(days=31)).timestamp()
    os.utime(old, (stamp, stamp))
    now_stamp = clock.now().timestamp()
    os.utime(new, (now_stamp, now_stamp))
    assert clean_exports(settings, clock.now()) == ["old.csv"]
    assert new.exists()


def test_an_export_folder_that_cannot_be_written_is_a_clear_error(
    database: Database, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings.export_dir = blocker / "exports"
    done = run(database, clock, settings, {"kind": "export", "export": {"type": "contacts"}})
    assert done.status == "failed" and "TIDINGS_EXPORT_DIR" in (done.detail or "")


def test_custom_fields_are_exported_as_the_importer_reads_them(
    database: Database, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    with database.session() as session:
        create_field(session, FieldIn(key="age", type="number"), now=clock.now())
        create_field(session, FieldIn(key="vip", type="boolean"), now=clock.now())
    add_contacts(database, clock, 2, fields={"age": 41, "vip": True}, tags=["b", "a"])
    done = run(database, clock, settings, {"kind": "export", "export": {"type": "contacts"}})
    path = settings.export_dir / (done.output_file or "")
    rows = list(csv.reader(path.open()))
    assert rows[0][-2:] == ["age", "vip"]
    assert rows[1] == ["c0@example.com", "", "", "", "subscribed", "a|b", "", "41", "true"]
    with path.open("rb") as stream:
        summary = import_contacts(database, stream, clock=clock, rejected_path=tmp_path / "r.csv")
    assert (summary.unchanged, summary.rejected) == (2, 0)
