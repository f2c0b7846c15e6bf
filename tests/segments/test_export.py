"""`tidings contacts export --segment` with a JSON condition and with a saved segment's name."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.contacts import service
from tidings.db.engine import Database
from tidings.segments.service import save_segment


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_export_by_condition_and_by_saved_name(
    cli: CliRunner, database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with database.session() as session:
        service.upsert_contacts(
            session,
            [
                service.ContactInput(email="a@example.com", tags=["VIP"]),
                service.ContactInput(email="b@example.com"),
            ],
            now=clock.now(),
            cause="api",
        )
        save_segment(session, "vips", {"has_tag": "VIP"}, now=clock.now())
    out = tmp_path / "out.csv"
    for segment in ('{"lacks_tag": "VIP"}', "vips"):
        result = cli.invoke(app, ["contacts", "export", str(out), "--segment", segment])
        assert result.exit_code == 0, result.output
        emails = [row["email"] for row in csv.DictReader(out.open())]
        assert emails == (["b@example.com"] if segment.startswith("{") else ["a@example.com"])
    result = cli.invoke(
        app,
        [
            "contacts",
            "export",
            str(out),
            "--segment",
            '{"event": {"type": "email_opened", "within_days": 0}}',
        ],
    )
    assert result.exit_code != 0
    assert "event.within_days: must be > 0" in result.output
    result = cli.invoke(app, ["contacts", "export", str(out), "--segment", "nosuch"])
    assert result.exit_code != 0 and "nosuch" in result.output
