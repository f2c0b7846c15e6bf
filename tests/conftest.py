"""Shared fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

Schemas are always built through the Alembic migrations. SQLite tests get their own copy of a
migrated database file; PostgreSQL tests share one migrated database per test session (created
fresh, so parallel runs never collide) and empty every table after each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import tidings.db.models  # noqa: F401
from tidings.app import create_app
from tidings.auth.service import create_api_key
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.base import Base
from tidings.db.engine import Database, create_database, normalize_url
from tidings.db.migrate import upgrade

POSTGRES_URL = os.environ.get("TIDINGS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = create_database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    assert POSTGRES_URL, "TIDINGS_TEST_POSTGRES_URL is not set"
    admin_url = make_url(normalize_url(POSTGRES_URL))
    name = f"tidings_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    database = create_database(url)
    upgrade(database)
    database.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_all(database: Database) -> None:
    """Delete every row and restart the id sequences.

    DELETE on tables holding a test's few rows is far faster than TRUNCATE, which builds new
    files for every table.
    """
    with database.engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        # Deleting the contacts added to the status ledger (its triggers): empty it last.
        conn.execute(text("DELETE FROM contact_status_counts"))
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        ).scalars()
        for sequence in list(sequences):
            conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "tidings.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        database = create_database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = create_database(request.getfixturevalue("postgres_url"))
        try:
            yield database
        finally:
            database.dispose()
            _empty_all(database)
            database.dispose()


@pytest.fixture
def database_url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        secret_file=tmp_path / "tidings.secret",
        base_url="http://testserver",
    )


@pytest.fixture
def app(settings: Settings, database: Database, clock: FakeClock) -> FastAPI:
    return create_app(settings, database=database, clock=clock)


@pytest.fixture
def api_key(database: Database, clock: FakeClock) -> str:
    with database.session() as session:
        _, key = create_api_key(session, "tests", now=clock.now())
    return key


@pytest.fixture
def client(app: FastAPI, api_key: str) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {api_key}"
        yield test_client
