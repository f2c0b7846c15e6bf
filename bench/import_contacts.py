"""Issue 2: import 200,000 generated contacts from CSV into SQLite, end to end.

Baseline, measured in the same run: plain `sqlite3.executemany` of the same rows (contacts,
their tag, their list membership and the same activity rows) into the same tables of a freshly
migrated database, with no validation. Also: one bulk-upsert API request of 10,000 contacts.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, datetime

from _common import DATA_DIR, fresh_sqlite, report, scale, timed
from fastapi.testclient import TestClient

from tidings.app import create_app
from tidings.auth.service import create_api_key
from tidings.clock import SystemClock
from tidings.config import Settings
from tidings.contacts.importer import import_contacts
from tidings.contacts.models import CustomField
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.db.types import sqlite_timestamp

ROWS = max(1_000, int(200_000 * scale()))
PLANS = ["free", "pro", "team"]


def generate(path: str) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "age", "plan", "signup"])
        for i in range(ROWS):
            writer.writerow(
                [
                    f"user{i}@example{i % 97}.com",
                    f"First{i}",
                    f"Last{i}",
                    18 + i % 60,
                    PLANS[i % 3],
                    f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
                ]
            )


def migrated(name: str) -> str:
    path = fresh_sqlite(name)
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    now = SystemClock().now()
    with database.session() as session:
        session.add_all(
            [
                CustomField(key="age", label="Age", type="number", created_at=now),
                CustomField(
                    key="plan", label="Plan", type="single_choice", options=PLANS, created_at=now
                ),
                CustomField(key="signup", label="Signup", type="date", created_at=now),
            ]
        )
    database.dispose()
    return str(path)


def baseline(csv_path: str) -> float:
    db_path = migrated("import_baseline.db")
    now = sqlite_timestamp(datetime.now(UTC))
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with timed() as elapsed:
        with open(csv_path, newline="") as source:
            rows = list(csv.reader(source))[1:]
        with conn:
            conn.execute("INSERT INTO tags (name, created_at) VALUES ('Imported', ?)", (now,))
            conn.execute(
                "INSERT INTO lists (name, double_opt_in, created_at) VALUES ('Newsletter', 0, ?)",
                (now,),
            )
            conn.executemany(
                "INSERT INTO contacts (email, first_name, last_name, status, score, fields, created_at, updated_at)"
                " VALUES (?, ?, ?, 'subscribed', 0, ?, ?, ?)",
                (
                    (
                        r[0],
                        r[1],
                        r[2],
                        json.dumps({"age": int(r[3]), "plan": r[4], "signup": r[5]}),
                        now,
                        now,
                    )
                    for r in rows
                ),
            )
            ids = [i for (i,) in conn.execute("SELECT id FROM contacts ORDER BY id")]
            conn.executemany(
                "INSERT INTO contact_tags (contact_id, tag_id, created_at) VALUES (?, 1, ?)",
                ((i, now) for i in ids),
            )
            conn.executemany(
                "INSERT INTO list_memberships (contact_id, list_id, status, created_at, updated_at) VALUES (?, 1, 'active', ?, ?)",
                ((i, now, now) for i in ids),
            )
            conn.executemany(
                "INSERT INTO activities (contact_id, type, cause, data, occurred_at) VALUES (?, ?, 'import', ?, ?)",
                (
                    (i, kind, "{}", now)
                    for i in ids
                    for kind in ("contact_created", "tag_added", "list_subscribed")
                ),
            )
    conn.close()
    return elapsed[0]


def tidings_import(csv_path: str) -> float:
    database = create_database(f"sqlite:///{migrated('import_tidings.db')}")
    with timed() as elapsed, open(csv_path, "rb") as stream:
        summary = import_contacts(
            database,
            stream,
            clock=SystemClock(),
            rejected_path=DATA_DIR / "import.rejected.csv",
            list_name="Newsletter",
            tag="Imported",
        )
    assert summary.created == ROWS and summary.rejected == 0, summary
    with timed() as again, open(csv_path, "rb") as stream:
        second = import_contacts(
            database,
            stream,
            clock=SystemClock(),
            rejected_path=DATA_DIR / "import.rejected.csv",
            list_name="Newsletter",
            tag="Imported",
        )
    assert second.unchanged == ROWS, second
    report("re-import of the same file (all unchanged)", ROWS / again[0], "rows/s")
    database.dispose()
    return elapsed[0]


def bulk_api() -> float:
    path = fresh_sqlite("bulk_api.db")
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    with database.session() as session:
        _, key = create_api_key(session, "bench", now=SystemClock().now())
    app = create_app(
        Settings(database_url=f"sqlite:///{path}", secret_key="bench"), database=database
    )
    body = {
        "contacts": [
            {
                "email": f"bulk{i}@example.com",
                "first_name": f"B{i}",
                "tags": ["Bulk"],
                "lists": ["Main"],
            }
            for i in range(10_000)
        ]
    }
    with TestClient(app) as client, timed() as elapsed:
        response = client.post(
            "/api/v1/contacts/bulk", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200 and response.json()["created"] == 10_000, response.text[:300]
    return elapsed[0]


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    csv_path = str(DATA_DIR / "contacts.csv")
    generate(csv_path)
    base = baseline(csv_path)
    ours = tidings_import(csv_path)
    report(f"baseline: sqlite3.executemany of {ROWS:,} rows", ROWS / base, "rows/s")
    report(
        f"tidings contacts import of {ROWS:,} rows (validated)",
        ROWS / ours,
        "rows/s",
        ROWS / base,
        ">= 10,000 rows/s",
    )
    report("bulk upsert API, 10,000 contacts in one request", bulk_api(), "s", target="< 2 s")


if __name__ == "__main__":
    main()
