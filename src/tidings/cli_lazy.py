"""Sub-commands loaded only when they run: `tidings --help` lists them without importing
SQLAlchemy, FastAPI and every domain package (which takes seconds on a loaded machine)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# Click's types are written as Any: Typer vendors its own copy of click in recent versions and
# uses the installed click in older ones.


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a sub-command lives (`module:attribute`, a Typer app or a command function) and
    the one line `--help` shows for it (tests/test_cli_help.py checks it matches)."""

    target: str
    help: str


class LazyGroup(TyperGroup):
    """A Typer group whose registered sub-commands (LAZY_COMMANDS) are imported on first use.

    While the group's own help is written, a sub-command not loaded yet is shown from its
    LazyCommand line; when it is resolved to run (or to show its own help) it is loaded."""

    lazy: dict[str, LazyCommand] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            if self._listing:
                return TyperCommand(cmd_name, help=self.lazy[cmd_name].help)
            self.commands[cmd_name] = load(cmd_name, self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def load(name: str, lazy: LazyCommand) -> Any:
    """The sub-command, built as `Typer.add_typer`/`Typer.command` on the main app build it."""
    module_name, _, attribute = lazy.target.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    holder = typer.Typer(add_completion=False)
    holder.callback()(_nothing)  # a callback makes the holder a group even with one command
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _nothing() -> None:
    pass
