"""Running Alembic migrations from code (the CLI's `db upgrade`, tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from tidings.db.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(database: Database, revision: str = "head", *, secret_file: Path | None = None) -> None:
    """Migrate to `revision`. `secret_file`: where a previous version kept its signing secret
    (migration 0014 carries it into the database)."""
    run_migrations(database, command.upgrade, revision, secret_file=secret_file)


def downgrade(database: Database, revision: str) -> None:
    run_migrations(database, command.downgrade, revision)


def run_migrations(
    database: Database,
    action: Callable[[Config, str], None],
    revision: str,
    *,
    secret_file: Path | None = None,
) -> None:
    """Run an Alembic command (upgrade, downgrade) in one transaction.

    SQLite runs it with foreign keys off, as SQLite advises for schema changes: rebuilding a
    table (how SQLite alters one) drops the old copy, and with the keys on, that drop would
    cascade to the rows referencing it. The keys are checked before the commit.
    """
    config = alembic_config()
    config.attributes["secret_file"] = secret_file
    with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        if sqlite:  # outside any transaction, where the pragma takes effect
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                action(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise RuntimeError(f"migration left a broken foreign key: {broken}")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")
