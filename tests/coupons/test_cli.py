"""`tidings coupons create|import|generate|stock|usage`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.config import get_settings


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_create_import_generate_stock_and_usage(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(app, ["coupons", "create", "SPRING", "--low-stock", "2"]).exit_code == 0
    codes = tmp_path / "codes.csv"
    codes.write_text("code\nA\nB\nA\n")
    bad = cli.invoke(app, ["coupons", "import", "SPRING", str(codes)])
    assert bad.exit_code == 2 and "row 4: duplicate code 'A'" in bad.output
    codes.write_text("code\nA\nB\n")
    assert "2 codes added" in cli.invoke(app, ["coupons", "import", "SPRING", str(codes)]).output
    made = cli.invoke(app, ["coupons", "generate", "SPRING", "--count", "3", "--pattern", "X-####"])
    assert "3 codes added" in made.output
    stock = cli.invoke(app, ["coupons", "stock", "SPRING"]).output
    assert "free=5" in stock and "assigned=0" in stock
    usage = cli.invoke(app, ["coupons", "usage", "SPRING"]).output.splitlines()
    assert usage[0] == "code,contact_id,assigned_at" and len(usage) == 6
    missing = cli.invoke(app, ["coupons", "stock", "NOPE"])
    assert missing.exit_code == 2 and "no coupon pool named 'NOPE'" in missing.output
