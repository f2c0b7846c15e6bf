"""Issue 3: 1,000,000 events for 100,000 contacts through the batch ingest path into SQLite.

The path measured is what `POST /events/batch` (NDJSON) and `tidings events import` run: parse
each line (orjson), validate, resolve contacts, drop duplicate event_ids, insert, keep every
contact's engagement summary and the daily aggregates current — 50,000 events per transaction.

Baseline, measured in the same run: plain `sqlite3.executemany` of the same rows (already
serialized, no validation, no summary) into the same table of a freshly migrated database.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import orjson
from _common import fresh_sqlite, report, scale, timed

from tidings.clock import FakeClock
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.db.types import sqlite_timestamp
from tidings.events.service import ingest_events
from tidings.events.validation import BadLine

EVENTS = max(10_000, int(1_000_000 * scale()))
CONTACTS = max(1_000, int(100_000 * scale()))
BATCH = 50_000
NOW = datetime(2026, 3, 1, tzinfo=UTC)
KINDS = (
    ["email_sent"] * 20
    + ["email_opened"] * 40
    + ["link_clicked"] * 15
    + ["site_visit"] * 10
    + ["purchase"] * 5
    + ["custom"] * 10
)


def migrated(name: str) -> str:
    path = fresh_sqlite(name)
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    conn = sqlite3.connect(path)
    stamp = sqlite_timestamp(NOW)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (email, status, score, fields, created_at, updated_at) "
            "VALUES (?, 'subscribed', 0, '{}', ?, ?)",
            ((f"user{i}@example.com", stamp, stamp) for i in range(CONTACTS)),
        )
    conn.close()
    return str(path)


def generate() -> list[bytes]:
    """NDJSON lines, as a client would send them (every event has an idempotency key)."""
    rng = random.Random(3)
    lines = []
    for i in range(EVENTS):
        kind = rng.choice(KINDS)
        at = NOW - timedelta(seconds=rng.randrange(90 * 86400))
        event: dict[str, object] = {
            "type": kind,
            "contact_id": 1 + rng.randrange(CONTACTS),
            "occurred_at": at.isoformat(),
            "event_id": f"ev-{i}",
        }
        if kind in ("email_sent", "email_opened", "link_clicked"):
            event["message_id"] = f"m-{i % 5000}"
        if kind in ("link_clicked", "site_visit"):
            event["url"] = f"https://shop.example.com/p/{i % 300}"
        if kind == "purchase":
            event["amount"] = round(rng.uniform(5, 200), 2)
            event["currency"] = "EUR"
            event["order_id"] = f"o-{i}"
        if kind == "custom":
            event["name"] = "trial_started"
            event["properties"] = {"plan": "pro"}
        lines.append(orjson.dumps(event))
    return lines


def parse(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return BadLine(str(exc))


def tidings_ingest(lines: list[bytes]) -> float:
    path = migrated("events_ingest.db")
    database = create_database(f"sqlite:///{path}")
    clock = FakeClock(NOW)
    stored = 0
    with timed() as elapsed:
        for start in range(0, len(lines), BATCH):
            events = [parse(line) for line in lines[start : start + BATCH]]
            with database.session() as session:
                result = ingest_events(session, events, now=clock.now(), cause="api")
            stored += result.stored
            assert not result.rejected, result.rejected[:3]
    assert stored == len(lines)
    with database.engine.connect() as conn:
        opens = conn.exec_driver_sql("SELECT sum(open_count) FROM contacts").scalar()
    print(f"  (summary check: {opens:,} human opens counted on contacts)")
    database.dispose()
    return len(lines) / elapsed[0]


def baseline(lines: list[bytes]) -> float:
    """Plain executemany of the same rows, pre-serialized (the cheapest possible write)."""
    rows = []
    for line in lines:
        event = orjson.loads(line)
        kind = event.pop("type")
        if kind == "custom":
            kind = "custom:" + event.pop("name")
        at = sqlite_timestamp(datetime.fromisoformat(event.pop("occurred_at")))
        rows.append(
            (
                event.pop("contact_id"),
                kind,
                "api",
                at,
                orjson.dumps(event).decode(),
                event.pop("event_id"),
                0,
            )
        )
    path = migrated("events_baseline.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with timed() as elapsed:
        for start in range(0, len(rows), BATCH):
            with conn:
                conn.executemany(
                    "INSERT INTO activities (contact_id, type, cause, occurred_at, data, "
                    "event_id, machine) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows[start : start + BATCH],
                )
    conn.close()
    return len(rows) / elapsed[0]


def main() -> None:
    print(f"{EVENTS:,} events for {CONTACTS:,} contacts, batches of {BATCH:,}")
    lines = generate()
    base = baseline(lines)
    report("plain sqlite3.executemany of the same rows (baseline)", base, "events/s")
    rate = tidings_ingest(lines)
    report(
        "ingest_events: parse, validate, dedupe, insert, summaries",
        rate,
        "events/s",
        baseline=base,
        target=">= 50,000 events/s, ratio >= 0.4",
    )


if __name__ == "__main__":
    main()
