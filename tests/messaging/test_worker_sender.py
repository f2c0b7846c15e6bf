"""`tidings worker` also runs the outbox sender when TIDINGS_SMTP_URL is set (not with
--no-sender)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.messaging.conftest import Sink
from tests.messaging.helpers import queue_receipt
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database
from tidings.messaging.devmail import start_sender
from tidings.messaging.models import OutboxMessage


@pytest.fixture
def cli(
    database_url: str, sink: Sink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("TIDINGS_SMTP_URL", sink.url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _status(database: Database, outbox_id: int) -> str:
    with database.session() as session:
        return str(
            session.scalar(select(OutboxMessage.status).where(OutboxMessage.id == outbox_id))
        )


def test_worker_once_sends_the_outbox_unless_no_sender(
    cli: CliRunner, database: Database, clock: FakeClock, sink: Sink
) -> None:
    outbox_id = queue_receipt(database, clock)
    skipped = cli.invoke(app, ["worker", "--once", "--no-sender"])
    assert skipped.exit_code == 0, skipped.output
    assert sink.handler.messages == [] and _status(database, outbox_id) == "queued"
    result = cli.invoke(app, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 email sent" in result.output
    assert sink.handler.count_by_recipient() == {"ann@example.org": 1}
    assert _status(database, outbox_id) == "sent"


def test_worker_sender_thread_delivers_and_stops(
    database: Database, clock: FakeClock, sink: Sink, tmp_path: Path
) -> None:
    assert start_sender(database, clock, Settings(smtp_url=None)) is None
    arrived = threading.Event()
    sink.handler.on_message = lambda _: arrived.set()
    queue_receipt(database, clock)
    settings = Settings(smtp_url=sink.url, secret_file=tmp_path / "secret")
    sender = start_sender(database, clock, settings)
    assert sender is not None
    try:
        assert arrived.wait(10)  # the first pass runs at once; no polling wait involved
    finally:
        sender.stop()
    assert not sender.thread.is_alive()
    assert sink.handler.count_by_recipient() == {"ann@example.org": 1}
