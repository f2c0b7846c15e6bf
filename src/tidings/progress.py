"""The progress bar the importing commands show while they read a file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn


def file_progress(label: str, console: Console) -> Progress:
    """A bar over the bytes of a file read (the importers report their position in bytes)."""
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console
    )


@contextmanager
def file_import(
    file: Path, label: str, console: Console
) -> Iterator[tuple[BinaryIO, Callable[[int], None]]]:
    """Open `file` for an importer, with a bar over its bytes: yields the stream and the
    `progress` callback importers take; the bar is full when the block ends normally."""
    with file.open("rb") as stream, file_progress(label, console) as bar:
        task = bar.add_task("import", total=file.stat().st_size)
        yield stream, lambda _rows: bar.update(task, completed=stream.tell())
        bar.update(task, completed=file.stat().st_size)
