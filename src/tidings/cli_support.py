"""What the parts of the `tidings` command share. The sub-commands (contacts/cli.py,
events/cli.py, automations/cli.py, ...) import from here at the top of their module; they
never import tidings.cli, which imports them to assemble the command.

Every command prints its result on standard output (`--json` for scripts on the commands that
list or report) and its errors, warnings and progress on standard error."""

from __future__ import annotations

import json
from typing import Any

import typer

from tidings.config import get_settings
from tidings.db.engine import Database, create_database
from tidings.text import counted

__all__ = ["JSON_OPTION_HELP", "counted", "echo_json", "open_database"]


def open_database() -> Database:
    """The database the settings name (TIDINGS_DATABASE_URL)."""
    return create_database(get_settings().database_url)


def echo_json(value: Any) -> None:
    """A result for scripts (`--json`): one JSON document on standard output."""
    typer.echo(json.dumps(value, default=str, ensure_ascii=False))


JSON_OPTION_HELP = "Print the result as JSON (for scripts)."
