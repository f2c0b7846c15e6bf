"""`tidings users create|password`: passwords printed once or typed, and they log in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tidings.cli import app as cli_app
from tidings.config import get_settings

from .conftest import sign_in


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_FILE", str(tmp_path / "secret"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_create_prints_a_one_time_password_that_logs_in(cli: CliRunner, app: FastAPI) -> None:
    result = cli.invoke(cli_app, ["users", "create", "boss@example.com", "--admin"])
    assert result.exit_code == 0, result.output
    password = result.stdout.strip().splitlines()[0]
    assert len(password) >= 16
    with TestClient(app, follow_redirects=False) as client:
        assert sign_in(client, "boss@example.com", password).status_code == 303
        assert client.get("/admin/settings").status_code == 200  # an admin

    reset = cli.invoke(cli_app, ["users", "password", "boss@example.com"])
    assert reset.exit_code == 0, reset.output
    new = reset.stdout.strip().splitlines()[0]
    with TestClient(app, follow_redirects=False) as client:
        assert sign_in(client, "boss@example.com", password).status_code == 401
        assert sign_in(client, "boss@example.com", new).status_code == 303


def test_create_with_a_typed_password(cli: CliRunner, app: FastAPI) -> None:
    typed = "typed password 42\ntyped password 42\n"
    result = cli.invoke(
        cli_app, ["users", "create", "ann@example.com", "--set-password"], input=typed
    )
    assert result.exit_code == 0, result.output
    with TestClient(app, follow_redirects=False) as client:
        assert sign_in(client, "ann@example.com", "typed password 42").status_code == 303
        assert client.get("/admin/settings").status_code == 403  # a member

    short = cli.invoke(
        cli_app, ["users", "create", "bob@example.com", "--set-password"], input="short\nshort\n"
    )
    assert short.exit_code == 2
    assert "at least 10 characters" in short.output
