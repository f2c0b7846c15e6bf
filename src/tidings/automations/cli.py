"""`tidings automations ...`, `tidings templates install ...` and `tidings worker`."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from tidings.cli_support import open_database
from tidings.clock import SystemClock
from tidings.errors import TidingsError

automations_app = typer.Typer(
    help="Automations: validate, simulate, create, enrol.", no_args_is_help=True
)
templates_app = typer.Typer(help="Built-in automation templates.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str, errors: list[dict[str, Any]] | None = None) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    for error in (errors or [])[1:]:
        console.print(f"[red]error:[/red] {error.get('field')}: {error.get('message')}")
    return typer.Exit(2)


def _read(file: Path) -> dict[str, Any]:
    from tidings.automations.definition import load_text

    text = file.read_text(encoding="utf-8")
    load_text(text, source=str(file))  # validates, with paths
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@automations_app.command("validate")
def validate_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    check_database: bool = typer.Option(
        False, help="Also report tags, lists, fields, templates it names that do not exist."
    ),
) -> None:
    """Check a definition (YAML or JSON): every problem is printed with its path."""
    from tidings.automations.definition import parse_definition

    try:
        data = _read(file)
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    if check_database:
        from tidings.automations.service import reference_problems

        with open_database().session() as session:
            for problem in reference_problems(session, parse_definition(data)):
                offer = " (will be created when first used)" if problem.get("offer") else ""
                console.print(
                    f"[yellow]warning:[/yellow] {problem['field']}: {problem['message']}{offer}"
                )
    typer.echo(f"{file}: valid ({len(data['steps'])} steps)")


@automations_app.command("create")
def create_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    paused: bool = typer.Option(False, help="Create it paused."),
) -> None:
    """Store a definition as a new automation (version 1)."""
    from tidings.automations.service import create_automation

    database = open_database()
    try:
        data = _read(file)
        with database.session() as session:
            automation = create_automation(
                session, data, now=SystemClock().now(), status="paused" if paused else "active"
            )
            typer.echo(f"automation {automation.id} {automation.name!r} version 1")
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None


@automations_app.command("enrol")
def enrol_command(
    name: str = typer.Argument(..., help="Automation name."),
    list_name: str = typer.Option(None, "--list", help="Enrol the active members of a list."),
    segment: str = typer.Option(None, "--segment", help="Enrol a segment (JSON condition)."),
    everyone: bool = typer.Option(False, "--all", help="Enrol every contact."),
) -> None:
    """Enrol contacts in bulk (one set-based insert)."""
    from tidings.automations.service import by_name, enrol_contacts

    database = open_database()
    try:
        with database.session() as session:
            count = enrol_contacts(
                session,
                by_name(session, name),
                now=SystemClock().now(),
                list_name=list_name,
                segment=json.loads(segment) if segment else None,
                everyone=everyone,
            )
    except (TidingsError, json.JSONDecodeError) as exc:
        raise _fail(getattr(exc, "detail", str(exc))) from None
    typer.echo(f"enrolled {count} contacts")


@automations_app.command("simulate")
def simulate_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    days: int = typer.Option(30, min=1, max=3650),
    database_file: Path = typer.Option(
        None, "--database", help="A SQLite database to copy (never modified)."
    ),
    scenario: Path = typer.Option(None, "--scenario", exists=True, dir_okay=False),
) -> None:
    """Run an automation on a copy of the data with a simulated clock; print each day."""
    from tidings.automations.simulate import run_simulation

    try:
        data = _read(file)
        report = run_simulation(
            data,
            days=days,
            database_file=database_file,
            scenario=yaml.safe_load(scenario.read_text()) if scenario else None,
        )
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    typer.echo(report)


@templates_app.command("install")
def install_command(
    name: str = typer.Argument(..., help="Template name: engagement-tagging"),
    list_name: str = typer.Option(None, "--list", help="Enrol only this list's members."),
    segment: str = typer.Option(None, "--segment", help="Enrol only this segment (JSON)."),
    join_list: str = typer.Option(
        None, "--join-list", help="New contacts join part 1 when they subscribe to this list."
    ),
    recent_days: float = typer.Option(7, help="Days until 'Recent activity' is removed."),
    disengaged_days: float = typer.Option(21, help="Days until 'Disengaged'."),
    inactive_days: float = typer.Option(30, help="Days until 'Inactive'."),
) -> None:
    """Install a built-in template (its automations are editable like any other)."""
    from tidings.automations.templates import (
        TEMPLATES,
        EngagementPeriods,
        install_engagement_tagging,
    )

    if name not in TEMPLATES:
        raise _fail(f"unknown template {name!r}; one of {', '.join(TEMPLATES)}")
    database = open_database()
    try:
        with database.session() as session:
            part1, part2, enrolled = install_engagement_tagging(
                session,
                now=SystemClock().now(),
                periods=EngagementPeriods(recent_days, disengaged_days, inactive_days),
                list_name=list_name,
                segment=json.loads(segment) if segment else None,
                join_list=join_list,
            )
            typer.echo(
                f"installed {part1.name!r} (id {part1.id}) and {part2.name!r} (id {part2.id})"
            )
            typer.echo(f"enrolled {enrolled} contacts")
    except (TidingsError, json.JSONDecodeError) as exc:
        raise _fail(getattr(exc, "detail", str(exc))) from None


def worker_command(
    concurrency: int = typer.Option(1, min=1, max=64, help="Worker threads in this process."),
    once: bool = typer.Option(False, help="Run until nothing is due, then exit."),
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Enrolments per transaction."),
    no_sender: bool = typer.Option(
        False, "--no-sender", help="Do not run the email sender here (run `tidings mail send`)."
    ),
) -> None:
    """Run automation workers (for scale-out; `tidings serve` runs one in-process), and the
    outbox email sender when TIDINGS_SMTP_URL is set (unless --no-sender)."""
    from tidings.automations.engine import Engine
    from tidings.automations.worker import Worker
    from tidings.config import get_settings
    from tidings.messaging.devmail import send_until_idle, start_sender

    database = open_database()
    clock = SystemClock()
    if once:
        stats = Engine(database, clock, batch_size=batch_size).run_until_idle()
        typer.echo(f"{stats.steps} steps, {stats.enrolled} enrolled")
        sent = None if no_sender else send_until_idle(database, clock, get_settings())
        if sent is not None:
            typer.echo(f"{sent} emails sent")
        return
    worker = Worker(
        database, clock, concurrency=concurrency, settings=get_settings(), batch_size=batch_size
    )
    signal.signal(signal.SIGTERM, lambda *_: worker._stop.set())
    sender = None if no_sender else start_sender(database, clock, get_settings())
    console.print(f"worker running with {concurrency} thread(s); Ctrl-C stops it")
    try:
        worker.run_forever()
    finally:
        if sender is not None:
            sender.stop()
