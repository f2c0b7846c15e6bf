"""`tidings system runs`."""

from __future__ import annotations

import json
from uuid import uuid4

import typer
from rich.console import Console
from rich.table import Table

from tidings.automations.service import by_name_or_id
from tidings.cli_support import open_database
from tidings.clock import SystemClock
from tidings.errors import TidingsError
from tidings.system.listing import list_runs
from tidings.system.starts import start_now

system_app = typer.Typer(help="System automations: list their runs, start one now.")


@system_app.command("runs")
def runs_command(
    automation: str | None = typer.Option(None, help="Only this automation's runs."),
    state: str | None = typer.Option(None, help="ready, waiting, done or failed."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    limit: int = typer.Option(50, min=1, max=1000, help="How many runs, newest first."),
) -> None:
    """The latest system automation runs, newest first."""
    try:
        with open_database().session() as session:
            runs, _ = list_runs(session, automation=automation, state=state, limit=limit)
    except TidingsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        for run in runs:
            typer.echo(json.dumps(run.model_dump(mode="json")))
        return
    table = Table("id", "automation", "state", "step", "started", "ended")
    for run in runs:
        table.add_row(
            str(run.id),
            run.automation,
            run.state,
            run.step or "",
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.ended_at.strftime("%Y-%m-%d %H:%M:%S") if run.ended_at else "",
        )
    Console().print(table)


@system_app.command("run")
def run_command(
    automation: str = typer.Argument(..., help="The system automation's name or id."),
    key: str | None = typer.Option(
        None, help="Names this request: run again with the same key, it starts no second run."
    ),
) -> None:
    """Start a run of a system automation now; `tidings worker` advances it."""
    try:
        with open_database().session() as session:
            found = by_name_or_id(session, automation)
            run_id, started = start_now(
                session, found.id, key=key or uuid4().hex, now=SystemClock().now()
            )
    except TidingsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"run {run_id}: {'started' if started else 'already started by this key'}")
