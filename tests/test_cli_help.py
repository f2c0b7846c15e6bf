"""`tidings --help` lists every command without importing the domain packages (issue 13)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tidings.cli import _Commands, app
from tidings.cli_lazy import load

HEAVY = ("sqlalchemy", "fastapi", "pydantic_settings", "tidings.db", "tidings.contacts")


def test_importing_the_cli_imports_no_database_or_web_stack() -> None:
    code = (
        "import sys, tidings.cli\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_command_without_loading_them() -> None:
    code = (
        "import sys\n"
        "from tidings.cli import main\n"
        "sys.argv = ['tidings', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert "LOADED []" in out.stdout
    for name in [*_Commands.lazy, "db", "apikey", "serve"]:
        assert f" {name} " in out.stdout


@pytest.mark.parametrize("name", sorted(_Commands.lazy))
def test_each_lazy_command_loads_and_its_listed_help_is_its_own(name: str) -> None:
    lazy = _Commands.lazy[name]
    command = load(name, lazy)
    assert " ".join((command.help or "").split()) == " ".join(lazy.help.split())
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f" {name} [OPTIONS]" in result.output
