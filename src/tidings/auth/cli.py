"""`tidings secret list|rotate|drop-old`: the keys that sign links in mail."""

from __future__ import annotations

import typer
from rich.console import Console

from tidings.auth.signing import KeyInfo, drop_old_keys, forget_cached_keys, list_keys, rotate_key
from tidings.cli_support import JSON_OPTION_HELP, counted, echo_json, open_database
from tidings.clock import SystemClock
from tidings.config import get_settings

secret_app = typer.Typer(
    help="The keys that sign unsubscribe, preference, opt-in and tracking links.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _line(key: KeyInfo) -> str:
    role = "signs and verifies" if key.signing else "verifies"
    return f"{key.id}\t{key.fingerprint}\t{key.created_at.isoformat()}\t{role}"


def _warn_if_overridden() -> None:
    if get_settings().secret_key:
        console.print(
            "[yellow]TIDINGS_SECRET_KEY is set: it signs and verifies every link, "
            "the keys in the database are not used.[/yellow]"
        )


@secret_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help=JSON_OPTION_HELP)) -> None:
    """The keys: id, fingerprint (never the key), created, and which one signs."""
    _warn_if_overridden()
    with open_database().session() as session:
        keys = list_keys(session)
    if as_json:
        echo_json(
            [
                {
                    "id": k.id,
                    "fingerprint": k.fingerprint,
                    "created_at": k.created_at.isoformat(),
                    "signing": k.signing,
                }
                for k in keys
            ]
        )
        return
    for key in keys:
        typer.echo(_line(key))


@secret_app.command("rotate")
def rotate_command(
    drop_old: bool = typer.Option(
        False,
        "--drop-old",
        help="Delete the older keys too: links signed with them stop working at once "
        "(for a key that leaked).",
    ),
) -> None:
    """Add a key that signs every new link; links signed before still verify (until
    `tidings secret drop-old`). Running processes take the new key within 30 seconds."""
    _warn_if_overridden()
    database = open_database()
    with database.session() as session:
        key = rotate_key(session, now=SystemClock().now(), drop_old=drop_old)
    forget_cached_keys(database)
    typer.echo(_line(key))
    dropped = " older keys deleted;" if drop_old else ""
    console.print(
        f"new signing key {key.id} ({key.fingerprint});{dropped} running `tidings serve` "
        "processes use it within 30 seconds; restart `tidings worker` processes so the mail "
        "they send carries it."
    )


@secret_app.command("drop-old")
def drop_old_command() -> None:
    """Delete every key but the one that signs: links signed with them stop working."""
    database = open_database()
    with database.session() as session:
        dropped = drop_old_keys(session)
    forget_cached_keys(database)
    typer.echo(f"{counted(dropped, 'older key')} deleted")
