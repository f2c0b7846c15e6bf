"""Commit hooks belong to the session factory of a Database, not to the Session class."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.activities.service import Cause, record
from tidings.db.engine import Database, create_database
from tidings.db.hooks import mark_work

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_importing_modules_changes_no_session() -> None:
    # Those that once registered listeners on the Session class, and those that import all.
    for module in ("tidings.activities.service", "tidings.automations.worker", "tidings.app"):
        importlib.import_module(module)
    plain = Session()
    assert len(plain.dispatch.before_commit) == 0
    assert len(plain.dispatch.after_commit) == 0
    assert len(plain.dispatch.after_rollback) == 0


def test_work_wakes_the_listeners_of_its_own_database_after_commit(
    database: Database, tmp_path: Path
) -> None:
    other = create_database(f"sqlite:///{tmp_path / 'other.db'}")
    woken: list[str] = []
    unsubscribe = database.hooks.on_work_committed(lambda: woken.append("own"))
    other.hooks.on_work_committed(lambda: woken.append("other"))
    try:
        with database.session() as session:
            record(session, None, "custom:x", Cause.API.value, NOW)
            assert woken == []  # not before the commit
        assert woken == ["own"]
        with database.session() as session:
            session.execute(select(1))  # no work: nobody is woken
        assert woken == ["own"]
        unsubscribe()
        with database.session() as session:
            mark_work(session)
        assert woken == ["own"]
    finally:
        other.dispose()


def test_a_rollback_forgets_the_work(database: Database) -> None:
    woken: list[int] = []
    database.hooks.on_work_committed(lambda: woken.append(1))
    with database.sessionmaker() as session:
        record(session, None, "custom:x", Cause.API.value, NOW)
        session.rollback()
        session.execute(select(1))  # the same session, a new transaction without work
        session.commit()
        assert session.scalar(select(Activity.id)) is None
    assert woken == []


def test_postgresql_sends_notify_only_for_work(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    with database.engine.connect() as listener:
        listener.execute(text("LISTEN tidings_automations"))
        listener.commit()
        with database.session() as session:
            session.execute(select(1))
        with database.session() as session:
            mark_work(session)
        listener.execute(text("SELECT 1"))
        driver = listener.connection.driver_connection
        assert driver is not None
        assert len(list(driver.notifies(timeout=1, stop_after=2))) == 1
