"""The `tidings` command line. Each domain adds its own sub-commands from its cli module,
loaded only when used (tidings.cli_lazy): what this module imports at its top is what
`tidings --help` costs, so everything else is imported inside the command that needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from tidings.cli_lazy import LazyCommand, LazyGroup

if TYPE_CHECKING:
    from tidings.db.engine import Database
    from tidings.polling import PollingThread


class _Commands(LazyGroup):
    lazy = {
        "automations": LazyCommand(
            "tidings.automations.cli:automations_app",
            "Automations: validate, simulate, create, enrol, list, show, pause, resume, end "
            "runs, delete.",
        ),
        "bounces": LazyCommand(
            "tidings.messaging.cli:bounces_app", "Bounce and complaint reports."
        ),
        "contacts": LazyCommand("tidings.contacts.cli:contacts_app", "Import and export contacts."),
        "deals": LazyCommand("tidings.deals.cli:deals_app", "Import and export deals."),
        "coupons": LazyCommand(
            "tidings.coupons.cli:coupons_app", "Coupon pools: import, generate, stock, usage."
        ),
        "dkim": LazyCommand("tidings.messaging.cli:dkim_app", "DKIM keys."),
        "events": LazyCommand(
            "tidings.events.cli:events_app", "Import and prune engagement events."
        ),
        "inbound": LazyCommand(
            "tidings.messaging.cli:inbound_command",
            "Receive bounces, complaints and mailto unsubscribes over SMTP (point MX or a "
            "transport for the bounce domain here).",
        ),
        "jobs": LazyCommand(
            "tidings.jobs.cli:jobs_app",
            "Jobs (send, export, import, membership, hygiene): run a spec by hand, list the runs.",
        ),
        "lists": LazyCommand(
            "tidings.contacts.cli:lists_app", "Manage list memberships by segment."
        ),
        "mail": LazyCommand("tidings.messaging.cli:mail_app", "Email delivery."),
        "pipelines": LazyCommand(
            "tidings.deals.cli:pipelines_app", "Deal pipelines and their stages."
        ),
        "secret": LazyCommand(
            "tidings.auth.cli:secret_app",
            "The keys that sign unsubscribe, preference, opt-in and tracking links.",
        ),
        "system": LazyCommand(
            "tidings.system.cli:system_app", "System automations: list their runs, start one now."
        ),
        "templates": LazyCommand(
            "tidings.automations.cli:templates_app", "Built-in automation templates."
        ),
        "users": LazyCommand(
            "tidings.deals.cli:users_app", "Users: the people who own deals and tasks."
        ),
        "worker": LazyCommand(
            "tidings.automations.cli:worker_command",
            "Run automation workers (for scale-out; `tidings serve` runs one in-process), the "
            "outbox email sender when TIDINGS_SMTP_URL is set (unless --no-sender), and jobs: "
            "runs left unfinished, the drop folder (TIDINGS_IMPORT_DIR), export retention.",
        ),
    }


app = typer.Typer(
    cls=_Commands,
    help="Tidings: self-hosted marketing automation and CRM.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
console = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or migrate the schema (safe to run repeatedly).

    Upgrading from a version that kept its signing secret in TIDINGS_SECRET_FILE
    (./tidings.secret) carries that key into the database: run it where the file is."""
    from tidings.cli_support import open_database
    from tidings.config import get_settings
    from tidings.db.migrate import upgrade

    database = open_database()
    upgrade(database, revision, secret_file=get_settings().secret_file)
    typer.echo(f"database at {database.engine.url.render_as_string()} is at {revision}")


@apikey_app.command("create")
def apikey_create(name: str) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from tidings.auth.service import create_api_key
    from tidings.cli_support import open_database
    from tidings.clock import SystemClock

    database = open_database()
    with database.session() as session:
        _, key = create_api_key(session, name, now=SystemClock().now())
    typer.echo(key)
    console.print("[yellow]Store this key now: it cannot be shown again.[/yellow]")


@apikey_app.command("list")
def apikey_list(
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
) -> None:
    """List API keys: id, name, the key's first characters, created, revoked."""
    from tidings.auth.service import list_api_keys
    from tidings.cli_support import echo_json, open_database

    with open_database().session() as session:
        rows = list_api_keys(session)
        if as_json:
            echo_json(
                [
                    {
                        "id": row.id,
                        "name": row.name,
                        "prefix": row.prefix,
                        "created_at": row.created_at.isoformat(),
                        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
                    }
                    for row in rows
                ]
            )
            return
        for row in rows:
            revoked = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
            typer.echo(
                f"{row.id}\t{row.name}\t{row.prefix}...\t{row.created_at.isoformat()}\t{revoked}"
            )


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: int = typer.Argument(..., help="The key's id (see `apikey list`)."),
) -> None:
    """Revoke an API key; requests with it are refused (401) from now on."""
    from tidings.auth.service import revoke_api_key
    from tidings.cli_support import open_database
    from tidings.clock import SystemClock
    from tidings.errors import NotFound

    try:
        with open_database().session() as session:
            row = revoke_api_key(session, key_id, now=SystemClock().now())
            name = row.name
    except NotFound as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"revoked key {key_id} ({name})")


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default from TIDINGS_HOST)."),
    port: int = typer.Option(None, help="Port (default from TIDINGS_PORT)."),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="Serve only; run `tidings worker` processes separately."
    ),
    dev_smtp: bool = typer.Option(
        False, "--dev-smtp", help="Catch all mail in a local SMTP sink; view it at /dev/mailbox."
    ),
    dev_smtp_port: int = typer.Option(
        1025, "--dev-smtp-port", min=1, max=65535, help="The --dev-smtp sink's loopback port."
    ),
) -> None:
    """Serve the API, with the automation worker, jobs and system automations in-process
    unless --no-worker."""
    import uvicorn

    from tidings.app import create_app
    from tidings.clock import SystemClock
    from tidings.config import default_base_url, get_settings
    from tidings.db.engine import create_database
    from tidings.db.migrate import upgrade

    settings = get_settings()
    if (host or port) and "base_url" not in settings.model_fields_set:
        host, port = host or settings.host, port or settings.port
        settings = settings.model_copy(
            update={"host": host, "port": port, "base_url": default_base_url(host, port)}
        )
    database = create_database(settings.database_url)
    upgrade(database, secret_file=settings.secret_file)
    application = create_app(settings, database=database)
    _hint_first_admin(database)
    worker = None
    background: list[PollingThread] = []
    if not no_worker:
        from tidings.automations.worker import Worker
        from tidings.jobs.worker import JobsWorker
        from tidings.system.scheduler import SystemScheduler

        worker = Worker(database, SystemClock(), settings=settings)
        worker.start()
        # One box runs everything `tidings worker` runs: jobs (the drop folder, interrupted
        # runs, export retention) and the system automations' scheduler.
        background = [
            JobsWorker(database, SystemClock(), settings),
            SystemScheduler(database, SystemClock(), settings),
        ]
        for thread in background:
            thread.start()
    email = None
    if not no_worker or dev_smtp:
        from tidings.messaging.devmail import start_email_services

        email = start_email_services(
            application,
            settings,
            database,
            SystemClock(),
            dev_smtp=dev_smtp,
            dev_smtp_port=dev_smtp_port,
        )
    try:
        uvicorn.run(
            application,
            host=host or settings.host,
            port=port or settings.port,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        for thread in background:
            thread.stop()
        if worker is not None:
            worker.stop()
        if email is not None:
            email.stop()


def _hint_first_admin(database: Database) -> None:
    """Until someone can log in, say how to make the first administrator."""
    from tidings.web.passwords import anyone_can_log_in

    with database.session() as session:
        if anyone_can_log_in(session):
            return
    console.print(
        "[yellow]No one can log in to the web admin (/admin) yet. Create the first "
        "administrator with:[/yellow]\n  tidings users create you@example.com --name 'You' "
        "--admin\n(it prints a one-time password; add --set-password to type one instead)"
    )


def main() -> None:
    app()
