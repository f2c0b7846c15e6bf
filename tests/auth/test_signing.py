"""The keys that sign links live in the database (issue 13): every process finds them, wherever
it was started; rotation keeps links already sent working until the old keys are dropped."""

from __future__ import annotations

import email
import re
import signal
from collections.abc import Iterator
from email import policy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from tests.messaging.conftest import Sink, free_port
from tests.messaging.conftest import sink as sink  # the SMTP sink fixture
from tests.messaging.helpers import queue_receipt
from tests.processes import run_tidings, start_serve, tidings_env
from tidings.auth import signing
from tidings.auth.models import SigningKey
from tidings.auth.signing import drop_old_keys, list_keys, rotate_key, signing_keys
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import Settings, get_settings
from tidings.db.engine import Database, create_database
from tidings.errors import NotFound
from tidings.events.tokens import InvalidToken, TrackingTokens
from tidings.messaging.links import LinkSigner


def _settings(database_url: str, **values: object) -> Settings:
    return Settings(database_url=database_url, base_url="http://testserver", **values)  # type: ignore[arg-type]


def test_every_process_gets_the_same_keys_from_the_database(
    database: Database, database_url: str
) -> None:
    settings = _settings(database_url)
    other = create_database(database_url)  # another process's connection pool
    try:
        keys = signing_keys(settings, database)
        assert len(keys) == 1 and len(keys[0]) >= 40
        assert signing_keys(settings, other) == keys
    finally:
        other.dispose()
    url = LinkSigner.from_settings(settings, database).unsubscribe_url(7)
    assert LinkSigner(keys, "http://testserver").read_unsubscribe(url.rsplit("/", 1)[1])
    overridden = _settings(database_url, secret_key="from-the-environment")
    assert signing_keys(overridden, database) == ("from-the-environment",)


def test_rotation_signs_with_the_new_key_and_verifies_old_links_until_dropped(
    database: Database, database_url: str, clock: FakeClock
) -> None:
    settings = _settings(database_url)
    before = LinkSigner.from_settings(settings, database)
    old_link = before.unsubscribe_token(7)
    old_open = TrackingTokens.from_settings(settings, database, clock).open_token(7, "m1")
    with database.session() as session:
        rotate_key(session, now=clock.now())
    keys = signing_keys(settings, create_database(database_url))  # a process started now
    assert len(keys) == 2
    after = LinkSigner(keys, "http://testserver")
    new_link = after.unsubscribe_token(8)
    assert after.read_unsubscribe(old_link).contact_id == 7
    assert after.read_unsubscribe(new_link).contact_id == 8
    with pytest.raises(NotFound):
        before.read_unsubscribe(new_link)  # signed with the new key
    assert TrackingTokens(keys, clock=clock).read_open(old_open).contact_id == 7
    with database.session() as session:
        assert [k.signing for k in list_keys(session)] == [False, True]
        assert drop_old_keys(session) == 1
    remaining = LinkSigner(keys[1:], "http://testserver")
    with pytest.raises(NotFound):
        remaining.read_unsubscribe(old_link)
    with pytest.raises(InvalidToken):
        TrackingTokens(keys[1:], clock=clock).read_open(old_open)
    assert remaining.read_unsubscribe(new_link).contact_id == 8


def test_a_first_key_is_made_when_there_is_none(database: Database, database_url: str) -> None:
    with database.session() as session:
        session.execute(delete(SigningKey))
    keys = signing_keys(_settings(database_url), create_database(database_url))
    assert len(keys) == 1
    assert signing_keys(_settings(database_url), create_database(database_url)) == keys


def test_keys_read_before_serve_while_the_database_does_not_answer(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(database_url)
    keys = signing_keys(settings, database)
    monkeypatch.setattr(signing, "REFRESH_SECONDS", 0.0)

    def unreachable(_: Database) -> tuple[str, ...]:
        raise OSError("connection refused")

    monkeypatch.setattr(signing, "_read", unreachable)
    assert signing_keys(settings, database) == keys  # the open pixel still answers
    with pytest.raises(OSError):
        signing_keys(settings, create_database(database_url))  # nothing read before


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.delenv("TIDINGS_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_secret_commands(cli: CliRunner, database: Database, database_url: str) -> None:
    signing_keys(_settings(database_url), database)  # as `db upgrade` made it
    first = cli.invoke(app, ["secret", "list"])
    assert first.exit_code == 0 and first.stdout.count("\n") == 1
    assert first.stdout.split("\t")[3].strip() == "signs and verifies"
    rotated = cli.invoke(app, ["secret", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.startswith("2\t") and "new signing key 2" in rotated.stderr
    listed = cli.invoke(app, ["secret", "list"]).stdout.splitlines()
    assert [line.split("\t")[3] for line in listed] == ["verifies", "signs and verifies"]
    assert cli.invoke(app, ["secret", "drop-old"]).exit_code == 0
    assert [
        line.split("\t")[0] for line in cli.invoke(app, ["secret", "list"]).stdout.splitlines()
    ] == ["2"]
    again = cli.invoke(app, ["secret", "rotate", "--drop-old"])
    assert again.exit_code == 0 and "older keys deleted" in again.stderr
    assert [
        line.split("\t")[0] for line in cli.invoke(app, ["secret", "list"]).stdout.splitlines()
    ] == ["3"]
    for key in cli.invoke(app, ["secret", "list"]).stdout.splitlines():
        assert len(key.split("\t")[1]) == 12  # a fingerprint, never the key


def test_a_worker_and_the_api_started_in_different_directories_agree(
    database: Database, database_url: str, clock: FakeClock, sink: Sink, tmp_path: Path
) -> None:
    """The worker signs the links of the mail it sends; the API, started elsewhere, verifies
    them. Each used to make its own ./tidings.secret, and every link answered 404."""
    queue_receipt(database, clock)
    api_dir, worker_dir = tmp_path / "api", tmp_path / "worker"
    api_dir.mkdir()
    worker_dir.mkdir()
    port = free_port()
    env = tidings_env(database_url=database_url, base_url=f"http://127.0.0.1:{port}")
    run_tidings(["worker", "--once"], {**env, "TIDINGS_SMTP_URL": sink.url}, worker_dir)
    message = email.message_from_bytes(sink.handler.messages[0].data, policy=policy.default)
    html = message.get_body(("html",))
    assert html is not None
    pattern = r'href="(http://[^"]+/(u|t/c)/[^"]+)"'
    links = {kind: url for url, kind in re.findall(pattern, html.get_content())}
    server = start_serve(env, api_dir, port, "--no-worker")
    try:
        page = httpx.get(links["u"], timeout=60)
        assert page.status_code == 200 and "ann@example.org" in page.text
        redirect = httpx.get(links["t/c"], timeout=60)
        assert redirect.status_code == 302
        assert redirect.headers["location"].startswith("https://shop.example.com/sale")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    assert not (api_dir / "tidings.secret").exists()
    assert not (worker_dir / "tidings.secret").exists()
