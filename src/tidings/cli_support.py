"""What the parts of the `tidings` command share. The sub-commands (contacts/cli.py,
events/cli.py, automations/cli.py, ...) import from here at the top of their module; they
never import tidings.cli, which imports them to assemble the command."""

from __future__ import annotations

from tidings.config import get_settings
from tidings.db.engine import Database, create_database


def open_database() -> Database:
    """The database the settings name (TIDINGS_DATABASE_URL)."""
    return create_database(get_settings().database_url)
