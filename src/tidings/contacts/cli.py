"""`tidings contacts import|export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer
from rich.console import Console
from sqlalchemy import select

from tidings.cli_support import JSON_OPTION_HELP, counted, echo_json, open_database
from tidings.clock import SystemClock
from tidings.contacts.csvfile import rejected_path_for
from tidings.contacts.importer import export_contacts, import_contacts
from tidings.contacts.policy import ContactStatus
from tidings.errors import TidingsError
from tidings.progress import file_import

contacts_app = typer.Typer(help="Import and export contacts.", no_args_is_help=True)
lists_app = typer.Typer(help="Manage list memberships by segment.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


@contacts_app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    list_name: str = typer.Option(
        None, "--list", help="Subscribe every imported contact to this list."
    ),
    tag: str = typer.Option(None, "--tag", help="Add this tag to every imported contact."),
    status: ContactStatus = typer.Option(
        ContactStatus.SUBSCRIBED,
        "--status",
        help="Status of new contacts (a 'status' column wins).",
    ),
    encoding: str = typer.Option("utf-8", help="Text encoding of the file."),
    force_resubscribe: bool = typer.Option(
        False, help="Let the file resubscribe unsubscribed, bounced or complained contacts."
    ),
    reason: str = typer.Option(None, help="Why (required with --force-resubscribe)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Import contacts from CSV. Rejected rows go to FILE.rejected.csv with the reason."""

    if force_resubscribe and not reason:
        raise _fail("--force-resubscribe needs --reason")
    database = open_database()
    rejected = rejected_path_for(file)
    rejected.unlink(missing_ok=True)
    try:
        with file_import(file, "importing", console) as (stream, progress):
            summary = import_contacts(
                database,
                stream,
                clock=SystemClock(),
                rejected_path=rejected,
                list_name=list_name,
                tag=tag,
                status=status.value,
                encoding=encoding,
                force_resubscribe=force_resubscribe,
                reason=reason,
                progress=progress,
            )
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    except LookupError as exc:
        raise _fail(f"--encoding: {exc}") from None
    if as_json:
        echo_json(
            {
                "created": summary.created,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "rejected": summary.rejected,
                "kept_status": summary.kept_status,
                "rejected_file": str(summary.rejected_file) if summary.rejected_file else None,
            }
        )
        return
    typer.echo(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {summary.rejected}"
    )
    if summary.kept_status:
        typer.echo(
            f"{counted(summary.kept_status, 'contact')} kept their unsubscribed/bounced/"
            "complained status (use --force-resubscribe with --reason to change it)"
        )
    for sample in summary.samples:
        console.print(f"  [yellow]{sample}[/yellow]")
    if summary.rejected_file:
        typer.echo(f"rejected rows written to {summary.rejected_file}")


@contacts_app.command("export")
def export_command(
    file: Path = typer.Argument(..., help="Output CSV file, or - for standard output."),
    segment: str = typer.Option(
        None, help="Only contacts matching this segment (JSON condition or saved segment name)."
    ),
) -> None:
    """Export contacts as CSV, in the columns `contacts import` reads."""

    database = open_database()
    where = None
    if segment:
        try:
            from tidings.segments.export import segment_filter  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise _fail("segments are not available in this build") from None
        try:
            where = segment_filter(database, segment)
        except TidingsError as exc:
            raise _fail(exc.detail) from None
    if str(file) == "-":  # the CSV is the result: the count goes beside it, to stderr
        count = export_contacts(database, sys.stdout, where=where)
        console.print(f"exported {counted(count, 'contact')}")
    else:
        with file.open("w", newline="", encoding="utf-8") as out:
            count = export_contacts(database, out, where=where)
        typer.echo(f"exported {counted(count, 'contact')} to {file}")


def _apply_segment(list_name: str, segment: str, action: Literal["add", "remove"]) -> None:
    from tidings.activities.service import Cause
    from tidings.contacts.models import MailingList
    from tidings.segments.lists import change_list_by_segment

    database = open_database()
    try:
        with database.session() as session:
            list_id = session.scalar(select(MailingList.id).where(MailingList.name == list_name))
            if list_id is None:
                raise _fail(f"list {list_name!r} does not exist")
            change = change_list_by_segment(
                session, list_id, segment, action, now=SystemClock().now(), cause=Cause.ADMIN
            )
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    verb = "subscribed to" if action == "add" else "unsubscribed from"
    typer.echo(f"{counted(change.changed, 'contact')} {verb} {list_name}")


@lists_app.command("add-segment")
def add_segment(
    list_name: str = typer.Argument(..., metavar="LIST"),
    segment: str = typer.Argument(..., help="JSON condition or saved segment name"),
) -> None:
    """Subscribe a segment's contacts to a list (contacts who left it are not put back)."""
    _apply_segment(list_name, segment, "add")


@lists_app.command("remove-segment")
def remove_segment(
    list_name: str = typer.Argument(..., metavar="LIST"),
    segment: str = typer.Argument(..., help="JSON condition or saved segment name"),
) -> None:
    """Unsubscribe a segment's contacts from a list."""
    _apply_segment(list_name, segment, "remove")
