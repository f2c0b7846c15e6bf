"""The progress bar the importing commands show while they read a file."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn


def file_progress(label: str, console: Console) -> Progress:
    """A bar over the bytes of a file read (the importers report their position in bytes)."""
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console
    )
