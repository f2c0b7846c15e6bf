"""`tidings mail send`, `tidings dkim generate`, `tidings bounces parse`, `tidings inbound`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

mail_app = typer.Typer(help="Email delivery.", no_args_is_help=True)
dkim_app = typer.Typer(help="DKIM keys.", no_args_is_help=True)
bounces_app = typer.Typer(help="Bounce and complaint reports.", no_args_is_help=True)
console = Console(stderr=True)


@mail_app.command("send")
def send_command(
    forever: bool = typer.Option(False, "--forever", help="Keep polling the outbox."),
    worker_id: str = typer.Option(
        None,
        "--worker-id",
        help="A stable name: a restarted sender takes back its own leases at once.",
    ),
    batch: int = typer.Option(500, "--batch", min=1, max=10_000),
) -> None:
    """Send what is due in the outbox (and queue due broadcasts)."""
    from tidings.clock import SystemClock
    from tidings.config import get_settings
    from tidings.db.engine import create_database
    from tidings.events.tokens import TrackingTokens
    from tidings.messaging.sender import SenderOptions, run_sender

    settings = get_settings()
    overrides: dict[str, object] = {"batch_size": batch}
    if worker_id:
        overrides["worker_id"] = worker_id
    database = create_database(settings.database_url)
    try:
        options = SenderOptions.from_settings(settings, database, **overrides)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    clock = SystemClock()
    tokens = TrackingTokens.from_settings(settings, database, clock)
    stats = run_sender(database, clock, options, tokens=tokens, forever=forever)
    typer.echo(
        f"sent {stats.sent}, deferred {stats.deferred}, failed {stats.failed}, "
        f"refused {stats.refused}, recovered {stats.recovered}"
    )


@dkim_app.command("generate")
def dkim_generate(
    domain: str = typer.Argument(..., help="The signing domain (d=), e.g. example.com"),
    selector: str = typer.Option("tidings", "--selector", "-s"),
    bits: int = typer.Option(2048, "--bits"),
    key_file: Path = typer.Option(None, "--key-file", help="Default: ./dkim-SELECTOR.pem"),
) -> None:
    """Create an RSA key and print the DNS TXT record to publish."""
    from tidings.messaging.dkim import DkimSigner, generate_key

    if bits < 1024:
        console.print("[red]error:[/red] --bits must be at least 1024 (2048 recommended)")
        raise typer.Exit(2)
    path = key_file or Path(f"dkim-{selector}.pem")
    if path.exists():
        console.print(f"[red]error:[/red] {path} exists; not overwriting a key")
        raise typer.Exit(2)
    pem = generate_key(bits)
    path.write_bytes(pem)
    path.chmod(0o600)
    typer.echo(DkimSigner.from_pem(domain, selector, pem).zone_record())
    console.print(
        f"private key written to {path}. Configure:\n"
        f"  TIDINGS_DKIM_SELECTOR={selector}\n  TIDINGS_DKIM_DOMAIN={domain}\n"
        f"  TIDINGS_DKIM_PRIVATE_KEY_FILE={path.resolve()}"
    )


@bounces_app.command("parse")
def bounces_parse(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Print how Tidings reads a bounce or complaint: one JSON object, with the rule that
    decided each recipient's kind."""
    from tidings.messaging.bounces import BounceParseError, parse_bounce

    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    try:
        report = parse_bounce(raw)
    except BounceParseError as exc:
        typer.echo(
            json.dumps(
                {
                    "kind": "none",
                    "recipients": [],
                    "status": None,
                    "diagnostic": None,
                    "rule": None,
                    "per_recipient": [],
                    "error": str(exc),
                }
            )
        )
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.as_json()))


def inbound_command(
    host: str = typer.Option("0.0.0.0", "--host"),
    port: int = typer.Option(2525, "--port"),
) -> None:
    """Receive bounces, complaints and mailto unsubscribes over SMTP (point MX or a transport
    for the bounce domain here)."""
    import asyncio

    from aiosmtpd.controller import Controller

    from tidings.clock import SystemClock
    from tidings.config import get_settings
    from tidings.db.engine import create_database
    from tidings.messaging.inbound import InboundHandler

    settings = get_settings()
    handler = InboundHandler(create_database(settings.database_url), SystemClock(), settings)
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    console.print(f"inbound SMTP listening on {host}:{port}")
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(mail_app, name="mail")
    app.add_typer(dkim_app, name="dkim")
    app.add_typer(bounces_app, name="bounces")
    app.command("inbound")(inbound_command)
