"""`tidings automations ...`, `tidings templates install ...` and `tidings worker`."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from tidings.cli_support import counted, open_database
from tidings.clock import SystemClock
from tidings.errors import TidingsError

automations_app = typer.Typer(
    help="Automations: validate, simulate, create, enrol, list, show, pause, resume, "
    "end runs, delete.",
    no_args_is_help=True,
)
templates_app = typer.Typer(help="Built-in automation templates.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str, errors: list[dict[str, Any]] | None = None) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    for error in (errors or [])[1:]:
        console.print(
            f"[red]error:[/red] {error.get('field')}: {error.get('message')}", soft_wrap=True
        )
    return typer.Exit(2)


def _contacts(count: int) -> str:
    return f"{count} contact" if count == 1 else f"{count} contacts"


def _read(file: Path) -> dict[str, Any]:
    from tidings.automations.definition import load_text

    text = file.read_text(encoding="utf-8")
    load_text(text, source=str(file))  # validates, with paths
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _warn(problems: list[dict[str, str]]) -> None:
    for problem in problems:
        offer = " (will be created when first used)" if problem.get("offer") else ""
        console.print(
            f"[yellow]warning:[/yellow] {problem['field']}: {problem['message']}{offer}",
            highlight=False,
            soft_wrap=True,  # one warning, one line, however long
        )


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
        from tidings.automations.references import reference_problems

        with open_database().session() as session:
            _warn(reference_problems(session, parse_definition(data)))
    typer.echo(f"{file}: valid ({len(data['steps'])} steps)")


@automations_app.command("create")
def create_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    paused: bool = typer.Option(False, help="Create it paused."),
    create_missing: bool = typer.Option(
        False, help="Create the tags and lists it names that do not exist yet."
    ),
) -> None:
    """Store a definition as a new automation (version 1). What it names that the database
    lacks (templates, tags, lists, fields, automations) is printed as a warning."""
    from tidings.automations.definition import parse_definition
    from tidings.automations.references import create_missing as create_them
    from tidings.automations.references import reference_problems
    from tidings.automations.service import create_automation

    database = open_database()
    now = SystemClock().now()
    try:
        data = _read(file)
        with database.session() as session:
            automation = create_automation(
                session, data, now=now, status="paused" if paused else "active"
            )
            problems = reference_problems(session, parse_definition(data))
            if create_missing:
                create_them(session, problems, now=now)
                problems = [p for p in problems if p.get("offer") != "create"]
            typer.echo(f"automation {automation.id} {automation.name!r} version 1")
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    _warn(problems)


@automations_app.command("enrol")
def enrol_command(
    name: str = typer.Argument(..., help="Automation name."),
    list_name: str = typer.Option(None, "--list", help="Enrol the active members of a list."),
    segment: str = typer.Option(
        None, "--segment", help="Enrol a segment (JSON condition or saved segment name)."
    ),
    everyone: bool = typer.Option(False, "--all", help="Enrol every contact."),
) -> None:
    """Enrol contacts in bulk (one set-based insert)."""
    from tidings.automations.service import by_name, enrol_contacts
    from tidings.segments.service import resolve

    database = open_database()
    try:
        with database.session() as session:
            count = enrol_contacts(
                session,
                by_name(session, name),
                now=SystemClock().now(),
                list_name=list_name,
                segment=resolve(session, segment) if segment else None,
                everyone=everyone,
            )
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    typer.echo(f"enrolled {_contacts(count)}")


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


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda v: v.isoformat())


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


@automations_app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """Every automation: id, status, current version, contacts running through it."""
    from tidings.automations.service import summaries

    with open_database().session() as session:
        rows = summaries(session)
    if as_json:
        typer.echo(_json(rows))
        return
    typer.echo(f"{'id':>6}  {'status':<7} {'version':>7} {'running':>8}  name")
    for row in rows:
        typer.echo(
            f"{row['id']:>6}  {row['status']:<7} {row['version']:>7} "
            f"{row['active_enrolments']:>8}  {row['name']}"
        )


@automations_app.command("show")
def show_command(
    automation: str = typer.Argument(..., help="Automation name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """An automation: status, versions, runs by state, per-step counts and its definition."""
    from tidings.automations.service import by_name_or_id, report

    try:
        with open_database().session() as session:
            shown = report(session, by_name_or_id(session, automation))
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    if as_json:
        typer.echo(_json(shown))
        return
    versions = ", ".join(str(v) for v in shown["versions"])
    typer.echo(
        f"automation {shown['id']} {shown['name']!r}: {shown['status']}, "
        f"version {shown['version']} (versions {versions})"
    )
    runs = ", ".join(f"{state} {n}" for state, n in sorted(shown["enrolments"].items()))
    typer.echo(f"runs: {runs or 'none'}")
    columns = ("waiting", "passed", "failed", "refused", "exited")
    typer.echo(f"{'step':<20} {'kind':<16}" + "".join(f" {c:>8}" for c in columns))
    for step in shown["steps"]:
        counts = "".join(f" {step[c]:>8}" for c in columns)
        typer.echo(f"{step['id']:<20} {step['kind']:<16}{counts}")
    typer.echo(f"definition (version {shown['version']}):")
    typer.echo(yaml.safe_dump(shown["definition"], sort_keys=False, allow_unicode=True).rstrip())


def _set_status(automation: str, status: str) -> None:
    from tidings.automations.service import by_name_or_id, set_status
    from tidings.db.hooks import mark_work

    try:
        with open_database().session() as session:
            found = by_name_or_id(session, automation)
            set_status(session, found, status, now=SystemClock().now())
            mark_work(session)  # resumed runs that are due: the workers look at once
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    typer.echo(f"automation {found.id} {found.name!r} {status}")


@automations_app.command("pause")
def pause_command(automation: str = typer.Argument(..., help="Automation name or id.")) -> None:
    """Pause: nothing runs and no trigger enrols; waiting runs keep their place."""
    _set_status(automation, "paused")


@automations_app.command("resume")
def resume_command(automation: str = typer.Argument(..., help="Automation name or id.")) -> None:
    """Resume a paused automation: runs that fell due meanwhile run now."""
    _set_status(automation, "active")


@automations_app.command("end-runs")
def end_runs_command(
    automation: str = typer.Argument(..., help="Automation name or id."),
    step: str = typer.Option(None, help="Only the runs at this step."),
    contact: list[int] = typer.Option(None, help="Only this contact's run (repeatable)."),
    reason: str = typer.Option(None, help="Recorded on each run ended (default: by hand)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for scripts)."),
) -> None:
    """End the active runs of an automation (all, or by step and/or contact): each is an
    exit with the reason, counted like one. Then a paused automation can be deleted."""
    from tidings.automations.service import by_name_or_id, end_runs

    try:
        with open_database().session() as session:
            by_step = end_runs(
                session,
                by_name_or_id(session, automation),
                now=SystemClock().now(),
                step=step,
                contact_ids=list(contact) if contact else None,
                reason=reason,
            )
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    ended = sum(by_step.values())
    if as_json:
        typer.echo(_json({"ended": ended, "by_step": by_step}))
        return
    detail = ", ".join(f"{s}: {n}" for s, n in by_step.items())
    typer.echo(f"ended {_runs(ended)}" + (f" ({detail})" if detail else ""))


@automations_app.command("delete")
def delete_command(automation: str = typer.Argument(..., help="Automation name or id.")) -> None:
    """Delete an automation with its versions and history (refused while contacts run
    through it: end their runs first)."""
    from tidings.automations.service import by_name_or_id, delete_automation

    try:
        with open_database().session() as session:
            found = by_name_or_id(session, automation)
            name, automation_id = found.name, found.id
            delete_automation(session, found)
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None
    typer.echo(f"deleted automation {automation_id} {name!r}")


@templates_app.command("install")
def install_command(
    name: str = typer.Argument(..., help="Template name: engagement-tagging"),
    list_name: str = typer.Option(None, "--list", help="Enrol only this list's members."),
    segment: str = typer.Option(
        None, "--segment", help="Enrol only this segment (JSON condition or saved segment name)."
    ),
    join_list: str = typer.Option(
        None, "--join-list", help="New contacts join part 1 when they subscribe to this list."
    ),
    recent_days: float = typer.Option(7, help="Days until 'Recent activity' is removed."),
    disengaged_days: float = typer.Option(21, help="Days until 'Disengaged'."),
    inactive_days: float = typer.Option(30, help="Days until 'Inactive'."),
    all_engaged: bool = typer.Option(
        False,
        "--all-engaged",
        help="Start everyone as engaged now (default: each contact's last engagement decides "
        "its tags and where its run waits).",
    ),
) -> None:
    """Install a built-in template (its automations are editable like any other)."""
    from tidings.automations.templates import (
        TEMPLATES,
        EngagementPeriods,
        install_engagement_tagging,
    )
    from tidings.segments.service import resolve

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
                segment=resolve(session, segment) if segment else None,
                join_list=join_list,
                all_engaged=all_engaged,
            )
            typer.echo(
                f"installed {part1.name!r} (id {part1.id}) and {part2.name!r} (id {part2.id})"
            )
            typer.echo(f"enrolled {_contacts(enrolled)}")
    except TidingsError as exc:
        raise _fail(exc.detail, exc.errors) from None


def worker_command(
    concurrency: int = typer.Option(1, min=1, max=64, help="Worker threads in this process."),
    once: bool = typer.Option(False, help="Run until nothing is due, then exit."),
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Enrolments per transaction."),
    no_sender: bool = typer.Option(
        False, "--no-sender", help="Do not run the email sender here (run `tidings mail send`)."
    ),
) -> None:
    """Run automation workers (for scale-out; `tidings serve` runs one in-process), the
    outbox email sender when TIDINGS_SMTP_URL is set (unless --no-sender), and jobs: runs
    left unfinished, the drop folder (TIDINGS_IMPORT_DIR), export retention."""
    from tidings.automations.engine import Engine
    from tidings.automations.worker import Worker
    from tidings.config import get_settings
    from tidings.jobs.worker import JobsWorker
    from tidings.messaging.devmail import send_until_idle, start_sender
    from tidings.system.scheduler import SystemScheduler

    database = open_database()
    clock = SystemClock()
    jobs = JobsWorker(database, clock, get_settings())
    system = SystemScheduler(database, clock, get_settings())
    if once:
        jobs.poll()  # interrupted job runs, the drop folder, export retention
        system.run_until_idle()  # due schedule ticks, finished events, system runs
        stats = Engine(database, clock, batch_size=batch_size).run_until_idle()
        typer.echo(f"{counted(stats.steps, 'step')}, {stats.enrolled} enrolled")
        sent = None if no_sender else send_until_idle(database, clock, get_settings())
        if sent is not None:
            typer.echo(f"{counted(sent, 'email')} sent")
        return
    worker = Worker(
        database, clock, concurrency=concurrency, settings=get_settings(), batch_size=batch_size
    )
    signal.signal(signal.SIGTERM, lambda *_: worker._stop.set())
    sender = None if no_sender else start_sender(database, clock, get_settings())
    jobs.start()  # resumes interrupted job runs first
    system.start()  # a missed schedule tick runs once now (catch_up: once)
    console.print(f"worker running with {counted(concurrency, 'thread')}; Ctrl-C stops it")
    try:
        worker.run_forever()
    finally:
        system.stop()
        jobs.stop()
        if sender is not None:
            sender.stop()
