"""The progress bar the importing commands show while they read a file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)


def file_progress(label: str, console: Console) -> Progress:
    """A bar over the bytes of a file read (the importers report their position in bytes)."""
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console
    )


class _FileBar:
    """Appears at the first progress report: an import refused for its header (before any
    row is read) shows its error alone, with no bar under it."""

    def __init__(self, file: Path, stream: BinaryIO, label: str, console: Console) -> None:
        self.file, self.stream = file, stream
        self.bar = file_progress(label, console)
        self.task: TaskID | None = None

    def report(self, _rows: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("import", total=self.file.stat().st_size)
        self.bar.update(self.task, completed=self.stream.tell())

    def finish(self) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.file.stat().st_size)

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


@contextmanager
def file_import(
    file: Path, label: str, console: Console
) -> Iterator[tuple[BinaryIO, Callable[[int], None]]]:
    """Open `file` for an importer, with a bar over its bytes: yields the stream and the
    `progress` callback importers take; the bar is full when the block ends normally."""
    with file.open("rb") as stream:
        bar = _FileBar(file, stream, label, console)
        try:
            yield stream, bar.report
            bar.finish()
        finally:
            bar.close()
