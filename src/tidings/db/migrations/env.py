"""Alembic environment: runs on the connection handed in by tidings.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import tidings.db.models  # noqa: F401  (registers every table)
from tidings.db import extras
from tidings.db.base import Base
from tidings.db.engine import create_database

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
        include_name=extras.include_name,  # the search index is not in the models
        include_object=extras.include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    database = create_database(config.get_main_option("sqlalchemy.url") or "")
    with database.engine.connect() as conn:
        _run(conn)
    database.dispose()
