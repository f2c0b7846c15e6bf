"""`tidings events import|prune`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console

from tidings.cli_support import JSON_OPTION_HELP, counted, echo_json, open_database
from tidings.clock import SystemClock
from tidings.errors import TidingsError
from tidings.progress import file_import

events_app = typer.Typer(help="Import and prune engagement events.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@events_app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    create_contacts: bool = typer.Option(
        False, help="Create a contact for an unknown email (status transactional)."
    ),
    batch_size: int = typer.Option(5_000, min=1, max=50_000, help="Events per transaction."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Import events from NDJSON (one event object per line, as POST /events takes).

    Rejected lines go to FILE.rejected.ndjson with their line number and reason."""
    from tidings.events.importer import import_events, rejected_path_for

    database = open_database()
    rejected = rejected_path_for(file)
    try:
        with file_import(file, "importing events", console) as (stream, progress):
            summary = import_events(
                database,
                stream,
                clock=SystemClock(),
                rejected_path=rejected,
                create_contacts=create_contacts,
                batch_size=batch_size,
                progress=progress,
            )
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    if as_json:
        echo_json(
            {
                "stored": summary.stored,
                "duplicates": summary.duplicates,
                "rejected": summary.rejected,
                "contacts_created": summary.created_contacts,
                "rejected_file": str(rejected) if summary.rejected else None,
            }
        )
        return
    typer.echo(
        f"stored {summary.stored}, duplicates {summary.duplicates}, "
        f"rejected {summary.rejected}, contacts created {summary.created_contacts}"
    )
    for sample in summary.samples:
        console.print(f"  [yellow]{sample}[/yellow]")
    if summary.rejected:
        typer.echo(f"rejected lines written to {rejected}")


@events_app.command("prune")
def prune_command(
    older_than: int = typer.Option(
        None,
        "--older-than",
        min=1,
        help="Delete raw events older than DAYS (default: TIDINGS_EVENT_RETENTION_DAYS).",
    ),
) -> None:
    """Delete old raw events. Engagement summaries and daily aggregates are kept as they are."""
    from tidings.config import get_settings
    from tidings.events.service import prune_events

    days = older_than or get_settings().event_retention_days
    if days is None:
        raise _fail("give --older-than DAYS or set TIDINGS_EVENT_RETENTION_DAYS")
    database = open_database()
    cutoff = SystemClock().now() - timedelta(days=days)
    total = 0
    while True:  # short transactions, so tracking and the API keep writing meanwhile
        with database.session() as session:
            removed = prune_events(session, cutoff)
        total += removed
        if removed == 0:
            break
    typer.echo(f"pruned {counted(total, 'event')} older than {counted(days, 'day')}")
