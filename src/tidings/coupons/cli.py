"""`tidings coupons create|import|generate|stock|usage`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import typer

from tidings.cli_support import open_database
from tidings.clock import SystemClock
from tidings.coupons import service
from tidings.errors import TidingsError

coupons_app = typer.Typer(help="Coupon pools: import, generate, stock, usage.")


def _fail(exc: TidingsError) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(2)


@coupons_app.command("create")
def create_command(
    name: str,
    low_stock: int = typer.Option(0, min=0, help="Warn at this many free codes."),
    notify: str | None = typer.Option(None, help="Email told once when stock is low."),
) -> None:
    """Create a pool (and its contact field coupon_<name>)."""
    try:
        with open_database().session() as session:
            service.create_pool(
                session, name, now=SystemClock().now(), low_stock=low_stock, notify=notify
            )
    except TidingsError as exc:
        raise _fail(exc) from None
    typer.echo(f"pool {name} created")


@coupons_app.command("import")
def import_command(name: str, path: Path) -> None:
    """Add the codes of a CSV file (first column); a duplicate refuses the file with its row."""
    try:
        with open_database().session() as session:
            added = service.import_csv(
                session, service.get_pool(session, name), path.read_text(encoding="utf-8")
            )
    except TidingsError as exc:
        raise _fail(exc) from None
    typer.echo(f"{added} codes added to {name}")


@coupons_app.command("generate")
def generate_command(
    name: str,
    count: int = typer.Option(..., min=1, max=1_000_000),
    pattern: str = typer.Option("####-####-####", help="Each # is a random letter or digit."),
) -> None:
    """Add `count` generated codes."""
    try:
        with open_database().session() as session:
            added = service.generate(session, service.get_pool(session, name), count, pattern)
    except TidingsError as exc:
        raise _fail(exc) from None
    typer.echo(f"{added} codes added to {name}")


@coupons_app.command("stock")
def stock_command(name: str) -> None:
    """Free and assigned codes, the shortage, and whether stock is low."""
    try:
        with open_database().session() as session:
            stock = service.stock(session, service.get_pool(session, name))
    except TidingsError as exc:
        raise _fail(exc) from None
    typer.echo(" ".join(f"{key}={value}" for key, value in stock.items()))


@coupons_app.command("usage")
def usage_command(name: str) -> None:
    """Every code with its contact id and when it was assigned, as CSV on stdout."""
    try:
        with open_database().session() as session:
            rows = service.usage(session, service.get_pool(session, name))
    except TidingsError as exc:
        raise _fail(exc) from None
    writer = csv.writer(sys.stdout)
    writer.writerow(["code", "contact_id", "assigned_at"])
    for code, contact, at in rows:
        writer.writerow([code, contact or "", at.isoformat() if at else ""])
