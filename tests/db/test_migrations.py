"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

import tidings.db.models  # noqa: F401
from tidings.db import extras
from tidings.db.base import Base
from tidings.db.engine import Database
from tidings.db.types import UTCDateTime


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        opts = {
            "compare_type": True,
            "include_name": extras.include_name,
            "include_object": extras.include_object,
        }
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def _migrate(database: Database, action: Any, revision: str) -> None:
    """Run an alembic command (upgrade, downgrade) to `revision` on the test database."""
    from tidings.db.migrate import run_migrations

    run_migrations(database, action, revision)


def test_sqlite_pragmas(database: Database) -> None:
    if not database.is_sqlite:
        return
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_0005_keeps_step_history_and_counts(database: Database) -> None:
    """Step-log rows of one step each become one-entry rows, and their counts the totals."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from alembic import command

    from tidings.automations.models import Enrolment, StepCount, StepLog
    from tidings.db.types import JSONType, UTCDateTime

    def migrate(action: Any, revision: str) -> None:
        _migrate(database, action, revision)

    migrate(command.downgrade, "0004")
    try:
        old_log = sa.table(
            "automation_step_log",
            *(sa.column(name) for name in ("enrolment_id", "automation_id", "contact_id")),
            *(sa.column(name) for name in ("step", "outcome", "detail")),
            sa.column("at", UTCDateTime()),
        )
        at = datetime(2026, 1, 5, tzinfo=UTC)
        with database.engine.begin() as connection:
            connection.execute(
                old_log.insert(),
                [
                    _old_row(1, 3, "tag", None, at),
                    _old_row(1, 3, "ab", "to a", at),
                    _old_row(2, 4, "tag", None, at),
                ],
            )
            enrolments = sa.table(
                "enrolments",
                *(sa.column(name) for name in ("automation_id", "version", "contact_id")),
                *(sa.column(name) for name in ("state", "hops", "run_key")),
                sa.column("goals_hit", JSONType),
                sa.column("entered_at", UTCDateTime()),
            )
            same = {"automation_id": 7, "version": 1, "hops": 0, "goals_hit": [], "entered_at": at}
            connection.execute(
                enrolments.insert(),
                [
                    {**same, "contact_id": 3, "run_key": "7:3:active", "state": "active"},
                    {**same, "contact_id": 4, "run_key": "7:4", "state": "completed"},
                    {**same, "contact_id": 5, "run_key": None, "state": "completed"},
                ],
            )
    finally:
        migrate(command.upgrade, "head")
    with database.session() as session:
        logs = session.scalars(select(StepLog).order_by(StepLog.id)).all()
        counts = {(c.step, c.outcome): c.count for c in session.scalars(select(StepCount))}
        slots = dict(session.execute(select(Enrolment.contact_id, Enrolment.run_slot)).all())
    assert slots == {3: "active", 4: "once", 5: None}
    assert [(log.enrolment_id, log.steps) for log in logs] == [
        (1, [["tag", "passed", None]]),
        (1, [["ab", "passed", "to a"]]),
        (2, [["tag", "passed", None]]),
    ]
    assert counts == {("tag", "passed"): 2, ("ab", "passed"): 1}
    assert logs[0].at == datetime(2026, 1, 5, tzinfo=UTC)


def _old_row(
    enrolment: int, contact: int, step: str, detail: str | None, at: Any
) -> dict[str, Any]:
    return {
        "enrolment_id": enrolment,
        "automation_id": 7,
        "contact_id": contact,
        "step": step,
        "outcome": "passed",
        "detail": detail,
        "at": at,
    }


def test_0006_sequences_hand_out_ids_in_blocks(database: Database) -> None:
    """PostgreSQL: enrolment and history ids come 1,000 per connection; activities one by one
    (the engine's cursor reads them in id order)."""
    from alembic import command

    if database.is_sqlite:
        return
    query = (
        "SELECT sequencename, cache_size FROM pg_sequences WHERE sequencename IN "
        "('enrolments_id_seq', 'automation_step_log_id_seq', 'activities_id_seq')"
    )

    def caches() -> dict[str, int]:
        with database.engine.connect() as connection:
            return {name: size for name, size in connection.exec_driver_sql(query).all()}

    assert caches() == {
        "enrolments_id_seq": 1000,
        "automation_step_log_id_seq": 1000,
        "activities_id_seq": 1,
    }
    _migrate(database, command.downgrade, "0005")
    try:
        assert set(caches().values()) == {1}
    finally:
        _migrate(database, command.upgrade, "head")
    assert caches()["enrolments_id_seq"] == 1000


def test_0009_drops_the_contact_tag_keys_and_back(database: Database) -> None:
    """Without keys on contact_tags; the downgrade removes orphans and restores them."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from alembic import command

    def migrate(action: Any, revision: str) -> None:
        _migrate(database, action, revision)

    def keys() -> int:
        with database.engine.connect() as connection:
            return len(sa.inspect(connection).get_foreign_keys("contact_tags"))

    assert keys() == 0
    at = datetime(2026, 1, 5, tzinfo=UTC).isoformat()
    with database.engine.begin() as connection:  # an orphan, as a race could leave one
        connection.execute(
            sa.text("INSERT INTO contact_tags (contact_id, tag_id, created_at) VALUES (7, 9, :at)"),
            {"at": at},
        )
    migrate(command.downgrade, "0008")
    try:
        assert keys() == 2
        with database.engine.connect() as connection:
            count = connection.execute(sa.text("SELECT count(*) FROM contact_tags")).scalar()
        assert count == 0
    finally:
        migrate(command.upgrade, "head")
    assert keys() == 0


def test_0014_keeps_rows_and_carries_the_secret_file_over(
    database: Database, tmp_path: Any
) -> None:
    """Contacts and lists rebuilt (SQLite) without losing what references them; the signing
    key is the one a previous version kept in its file."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from alembic import command

    from tidings.db.migrate import run_migrations

    _migrate(database, command.downgrade, "0009")
    at = datetime(2026, 1, 5, tzinfo=UTC)
    contacts = sa.table(
        "contacts",
        sa.column("id"),
        *(sa.column(c) for c in ("email", "status", "score", "fields")),
        *(sa.column(c, UTCDateTime()) for c in ("created_at", "updated_at")),
    )
    with database.engine.begin() as connection:
        connection.execute(
            contacts.insert(),
            [
                {"email": f"c{i}@example.com", "status": "subscribed", "score": 0}
                | {"fields": "{}", "created_at": at, "updated_at": at}
                for i in (1, 2, 3)
            ],
        )
        connection.execute(
            sa.text(
                "INSERT INTO lists (id, name, double_opt_in, created_at) VALUES (1, 'News', "
                "false, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            sa.text(
                "INSERT INTO list_memberships VALUES (2, 1, 'active', :at, :at), "
                "(3, 1, 'active', :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            sa.text(
                "INSERT INTO email_templates (id, name, subject, html, variables, track_opens, "
                "track_clicks, created_at, updated_at) VALUES (1, 't', 's', 'h', '{}', true, "
                "true, :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            sa.text(
                "INSERT INTO broadcasts (id, name, template_id, list_id, status, scheduled_at, "
                "recipients, created_at) VALUES (1, 'b', 1, 1, 'sent', :at, 0, :at)"
            ),
            {"at": at},
        )
        connection.execute(sa.text("DELETE FROM contacts WHERE id = 3"))
        connection.execute(sa.text("DELETE FROM list_memberships WHERE contact_id = 3"))
    secret = tmp_path / "tidings.secret"
    secret.write_text("the-old-secret\n")
    run_migrations(database, command.upgrade, "head", secret_file=secret)
    with database.engine.begin() as connection:
        memberships = connection.execute(sa.text("SELECT contact_id FROM list_memberships"))
        assert memberships.scalars().all() == [2]
        assert connection.execute(sa.text("SELECT list_id FROM broadcasts")).scalar() == 1
        assert connection.execute(sa.text("SELECT key FROM signing_keys")).scalars().all() == [
            "the-old-secret"
        ]
        connection.execute(sa.text("DELETE FROM contacts WHERE id = 2"))
        new_id = connection.execute(
            contacts.insert().returning(contacts.c.id),
            {"email": "new@example.com", "status": "subscribed", "score": 0}
            | {"fields": "{}", "created_at": at, "updated_at": at},
        ).scalar()
    # SQLite: 3 was the largest id once (before the upgrade, so it is lost), 2 since.
    assert new_id == (3 if database.is_sqlite else 4)
