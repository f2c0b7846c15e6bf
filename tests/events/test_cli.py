"""`tidings events import` and `tidings events prune`, run in-process against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tidings.activities.models import Activity
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.contacts import service
from tidings.contacts.models import Contact
from tidings.db.engine import Database


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _contact(database: Database, clock: FakeClock) -> int:
    with database.session() as session:
        return service.upsert_contacts(
            session, [service.ContactInput(email="a@example.com")], now=clock.now(), cause="api"
        ).contact_ids[0]


def test_import_ndjson_with_bad_lines_twice(
    cli: CliRunner, database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    cid = _contact(database, clock)
    source = tmp_path / "events.ndjson"
    lines = [
        orjson.dumps(
            {
                "type": "email_opened",
                "contact_id": cid,
                "event_id": "e1",
                "occurred_at": "2026-01-05T10:00:00Z",
            }
        ),
        b"{oops",
        orjson.dumps({"type": "purchase", "email": "b@example.com", "amount": 3, "event_id": "e2"}),
        b"",
        orjson.dumps({"type": "nope", "contact_id": cid}),
        b'{"type": "custom", "name": "x", "contact_id": %d, "properties": {"big": "%s"}}'
        % (cid, b"y" * (1024 * 1024 + 10)),
    ]
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = cli.invoke(
        app, ["events", "import", str(source), "--create-contacts", "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "stored 2, duplicates 0, rejected 3, contacts created 1" in result.output
    rejected = [
        orjson.loads(line)
        for line in (tmp_path / "events.rejected.ndjson").read_bytes().splitlines()
    ]
    assert [r["line"] for r in rejected] == [2, 5, 6]
    assert rejected[0]["reason"].startswith("not valid JSON")
    assert rejected[1]["reason"].startswith("type: unknown event type")
    assert rejected[2]["reason"] == "longer than 1048576 bytes"

    again = cli.invoke(app, ["events", "import", str(source), "--create-contacts"])
    assert "stored 0, duplicates 2, rejected 3, contacts created 0" in again.output
    with database.session() as session:
        assert (
            session.scalar(select(Contact.purchase_count).where(Contact.email == "b@example.com"))
            == 1
        )


def test_import_rejects_events_with_a_nul_character_and_stores_the_rest(
    cli: CliRunner, database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """PostgreSQL refused the whole batch (0 of 2,999 stored)."""
    cid = _contact(database, clock)
    events = [
        {"type": "site_visit", "contact_id": cid, "url": f"https://shop.test/{i}"}
        for i in range(2_999)
    ]
    events.insert(10, {"type": "site_visit", "contact_id": cid, "url": "https://shop.test/\x00"})
    events.insert(
        20, {"type": "custom", "name": "x", "contact_id": cid, "properties": {"a": "\x00"}}
    )
    source = tmp_path / "visits.ndjson"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    result = cli.invoke(app, ["events", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "stored 2999, duplicates 0, rejected 2" in result.output
    rejected = [
        orjson.loads(line)
        for line in (tmp_path / "visits.rejected.ndjson").read_bytes().splitlines()
    ]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejected] == [
        (11, "url"),
        (21, "properties.a"),
    ]


def test_prune(
    cli: CliRunner, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    source = tmp_path / "events.ndjson"
    source.write_bytes(
        b"\n".join(
            orjson.dumps(
                {
                    "type": "email_opened",
                    "email": "a@example.com",
                    "occurred_at": (now - timedelta(days=d)).isoformat(),
                }
            )
            for d in (1, 50, 100)
        )
    )
    assert cli.invoke(app, ["events", "import", str(source), "--create-contacts"]).exit_code == 0
    refused = cli.invoke(app, ["events", "prune"])
    assert refused.exit_code == 2 and "--older-than" in refused.output
    result = cli.invoke(app, ["events", "prune", "--older-than", "60"])
    assert result.exit_code == 0 and "pruned 1 event older than 60 days" in result.output
    monkeypatch.setenv("TIDINGS_EVENT_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    assert "pruned 1 event older than 30 days" in cli.invoke(app, ["events", "prune"]).output
    with database.session() as session:
        assert session.scalars(select(Activity.type)).all() == ["contact_created", "email_opened"]
        assert session.scalar(select(Contact.open_count)) == 3
