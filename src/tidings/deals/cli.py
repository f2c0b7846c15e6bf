"""`tidings deals import|export`, `tidings pipelines create|list`, `tidings users ...`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from tidings.cli_support import JSON_OPTION_HELP, counted, echo_json, open_database
from tidings.clock import SystemClock
from tidings.contacts.csvfile import rejected_path_for
from tidings.db.engine import Database
from tidings.deals import pipelines, users
from tidings.deals.importer import export_deals, import_deals
from tidings.deals.pipelines import StageSpec
from tidings.deals.users import Role
from tidings.errors import TidingsError
from tidings.progress import file_import
from tidings.web import passwords
from tidings.web.logins import end_sessions_of

deals_app = typer.Typer(help="Import and export deals.", no_args_is_help=True)
pipelines_app = typer.Typer(help="Deal pipelines and their stages.", no_args_is_help=True)
users_app = typer.Typer(help="Users: the people who own deals and tasks.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _database() -> Database:
    return open_database()


@deals_app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    encoding: str = typer.Option("utf-8", help="Text encoding of the file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Import deals from CSV (rows with an id update that deal). Rejected rows go to
    FILE.rejected.csv with the reason."""
    database = _database()
    rejected = rejected_path_for(file)
    rejected.unlink(missing_ok=True)
    try:
        with file_import(file, "importing", console) as (stream, progress):
            summary = import_deals(
                database,
                stream,
                clock=SystemClock(),
                rejected_path=rejected,
                encoding=encoding,
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
                "rejected_file": str(summary.rejected_file) if summary.rejected_file else None,
            }
        )
        return
    typer.echo(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {summary.rejected}"
    )
    for sample in summary.samples:
        console.print(f"  [yellow]{sample}[/yellow]")
    if summary.rejected_file:
        typer.echo(f"rejected rows written to {summary.rejected_file}")


@deals_app.command("export")
def export_command(
    file: Path = typer.Argument(..., help="Output CSV file, or - for standard output."),
    pipeline: str = typer.Option(None, help="Only the deals of this pipeline (name or id)."),
) -> None:
    """Export deals as CSV, in the columns `deals import` reads."""
    database = _database()
    pipeline_id = None
    if pipeline:
        try:
            with database.session() as session:
                pipeline_id = pipelines.find_pipeline(session, pipeline).id
        except TidingsError as exc:
            raise _fail(exc.detail) from None
    if str(file) == "-":  # the CSV is the result: the count goes beside it, to stderr
        count = export_deals(database, sys.stdout, pipeline_id=pipeline_id)
        console.print(f"exported {counted(count, 'deal')}")
    else:
        with file.open("w", newline="", encoding="utf-8") as out:
            count = export_deals(database, out, pipeline_id=pipeline_id)
        typer.echo(f"exported {counted(count, 'deal')} to {file}")


def _stage_spec(text: str) -> StageSpec:
    title, colon, probability = text.rpartition(":")
    if colon and probability.strip().isdigit():
        return StageSpec(title, probability=int(probability))
    return StageSpec(text)


@pipelines_app.command("create")
def pipelines_create(
    name: str,
    currency: str = typer.Option(..., help="ISO 4217 code of the deals' values, e.g. EUR."),
    stage: list[str] = typer.Option(
        ..., "--stage", help="A stage, in order; TITLE or TITLE:PROBABILITY (percent)."
    ),
) -> None:
    """Create a pipeline with its stages."""
    try:
        with _database().session() as session:
            pipeline = pipelines.create_pipeline(
                session, name, currency, [_stage_spec(s) for s in stage], now=SystemClock().now()
            )
            pipeline_id = pipeline.id
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    typer.echo(f"created pipeline {pipeline_id} ({name})")


@pipelines_app.command("list")
def pipelines_list(as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP)) -> None:
    """Pipelines with their stages: id, name, currency, then stage id, title, probability."""
    with _database().session() as session:
        grouped = pipelines.stages_by_pipeline(session)
        if as_json:
            echo_json(
                [
                    {
                        "id": p.id,
                        "name": p.name,
                        "currency": p.currency,
                        "stages": [
                            {"id": s.id, "title": s.title, "probability": s.probability}
                            for s in grouped.get(p.id, [])
                        ],
                    }
                    for p in pipelines.list_pipelines(session)
                ]
            )
            return
        for pipeline in pipelines.list_pipelines(session):
            typer.echo(f"{pipeline.id}\t{pipeline.name}\t{pipeline.currency}")
            for s in grouped.get(pipeline.id, []):
                typer.echo(f"  {s.id}\t{s.title}\t{s.probability}%")


def _password_for(ask: bool) -> tuple[str, bool]:
    """The password to set: typed twice (hidden) with --set-password, else a random one-time
    password to print. Returns it and whether it was generated."""
    if ask:
        typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return typed, False
    return passwords.one_time_password(), True


def _announce(password: str, generated: bool) -> None:
    if generated:
        typer.echo(password)
        console.print(
            "[yellow]The password above is shown once: give it to the user, who can change it "
            "under Account after logging in at /admin.[/yellow]"
        )


@users_app.command("create")
def users_create(
    email: str,
    name: str = typer.Option(None, "--name", help="The user's name (default: from the email)."),
    admin: bool = typer.Option(False, "--admin", help="An administrator (default: member)."),
    set_password: bool = typer.Option(
        False, "--set-password", help="Type the password (default: print a one-time password)."
    ),
) -> None:
    """Create a user who can log in to the web admin: prints a one-time password, or asks for
    one with --set-password."""
    role = Role.ADMIN if admin else Role.MEMBER
    password, generated = _password_for(set_password)
    now = SystemClock().now()
    try:
        passwords.check_new_password(password)
        with _database().session() as session:
            display = name if name is not None else email.strip().partition("@")[0]
            user = users.create_user(session, email, display, role=role, now=now)
            passwords.set_password(session, user, password, now=now)
            user_id, address = user.id, user.email
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    console.print(f"created user {user_id} ({address}, {role.value})")  # the password is the result
    _announce(password, generated)


@users_app.command("password")
def users_password(
    user: str = typer.Argument(..., help="The user's id or email."),
    set_password: bool = typer.Option(
        False, "--set-password", help="Type the password (default: print a one-time password)."
    ),
) -> None:
    """Give a user a new password (a forgotten one); their sessions are logged out."""
    password, generated = _password_for(set_password)
    now = SystemClock().now()
    try:
        passwords.check_new_password(password)
        with _database().session() as session:
            row = users.find_user(session, user)
            passwords.set_password(session, row, password, now=now)
            end_sessions_of(session, row.id)
            address = row.email
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    console.print(f"new password set for {address}")
    _announce(password, generated)


@users_app.command("list")
def users_list(
    all_users: bool = typer.Option(False, "--all", help="Include deactivated users."),
    as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP),
) -> None:
    """Users: id, email, name, role, active or deactivated."""
    with _database().session() as session:
        found = users.list_users(session, active=None if all_users else True)
        if as_json:
            echo_json(
                [
                    {
                        "id": u.id,
                        "email": u.email,
                        "name": u.name,
                        "role": u.role,
                        "active": u.active,
                    }
                    for u in found
                ]
            )
            return
        for user in found:
            state = "active" if user.active else "deactivated"
            typer.echo(f"{user.id}\t{user.email}\t{user.name}\t{user.role}\t{state}")


@users_app.command("deactivate")
def users_deactivate(user: str = typer.Argument(..., help="The user's id or email.")) -> None:
    """Deactivate a user: their deals and tasks stay theirs, nothing new can be given them."""
    try:
        with _database().session() as session:
            row = users.find_user(session, user)
            users.deactivate_user(session, row, now=SystemClock().now())
            address = row.email
    except TidingsError as exc:
        raise _fail(exc.detail) from None
    typer.echo(f"deactivated {address}")
