"""`tidings jobs run JOB.yaml` and `tidings jobs runs`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import select

from tidings.cli_support import open_database
from tidings.clock import SystemClock
from tidings.config import get_settings
from tidings.errors import TidingsError
from tidings.jobs import runner
from tidings.jobs.api import JobRunOut
from tidings.jobs.context import JobStatus
from tidings.jobs.models import JobRun
from tidings.jobs.specs import parse_yaml

jobs_app = typer.Typer(help="Jobs: run a job spec by hand and list job runs.")
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@jobs_app.command("run")
def run_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Run the job of a YAML spec here, with a progress bar; exits 1 when the run failed."""
    database = open_database()
    settings, clock = get_settings(), SystemClock()
    try:
        spec = parse_yaml(file.read_text(encoding="utf-8"))
        with database.session() as session:
            runner.check_spec(session, spec, settings=settings, clock=clock)
    except TidingsError as exc:
        raise _fail(f"{file}: {exc.detail}") from None
    except UnicodeDecodeError:
        raise _fail(f"{file}: not UTF-8 text") from None
    bar = Progress(
        TextColumn(f"{spec.kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with bar:
        task = bar.add_task(spec.kind, total=None)
        run = runner.run_job(
            database,
            spec,
            clock=clock,
            settings=settings,
            requested_by="cli",
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    _print_run(run)
    if run.status == JobStatus.FAILED:
        raise typer.Exit(1)


def _print_run(run: JobRun) -> None:
    colour = {"succeeded": "green", "partial": "yellow", "failed": "red"}.get(run.status, "")
    console.print(
        f"run {run.id}: [{colour}]{run.status}[/{colour}] - read {run.rows_read}, written "
        f"{run.rows_written}, rejected {run.rows_rejected}, skipped {run.rows_skipped}"
    )
    if run.detail:
        console.print(f"  {run.detail}")
    for error in run.errors[:5]:
        console.print(f"  [yellow]{error.get('item')}: {error.get('message')}[/yellow]")
    if run.output_file:
        console.print(f"  output: {get_settings().export_dir / run.output_file}")


@jobs_app.command("runs")
def runs_command(
    failed: bool = typer.Option(False, "--failed", help="Only failed runs."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    limit: int = typer.Option(50, min=1, max=1000, help="How many runs, newest first."),
) -> None:
    """The latest job runs, newest first."""
    database = open_database()
    with database.session() as session:
        query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
        if failed:
            query = query.where(JobRun.status == JobStatus.FAILED)
        runs = list(session.scalars(query))
    if as_json:
        for run in runs:
            typer.echo(json.dumps(JobRunOut.of(run).model_dump(mode="json")))
        return
    table = Table("id", "kind", "status", "created", "read", "written", "rejected", "detail")
    for run in runs:
        table.add_row(
            str(run.id),
            run.kind,
            run.status,
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(run.rows_read),
            str(run.rows_written),
            str(run.rows_rejected),
            (run.detail or "")[:60],
        )
    Console().print(table)
