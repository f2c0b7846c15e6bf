"""Reading CSV defensively: bad bytes, ragged rows and huge lines reject a row, not the file."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tidings.errors import ValidationFailed
from tidings.text import counted

MAX_LINE_BYTES = 1 << 20  # a physical line longer than 1 MiB is rejected, never held in memory
_OVERLONG = "\x01tidings-overlong-line\x01"
csv.field_size_limit(MAX_LINE_BYTES * 2)


@dataclass(slots=True)
class Record:
    line: int  # first physical line of the record, 1-based
    values: list[str] | None  # None: rejected as read (`error` says why)
    error: str | None = None
    # The cells of a row rejected as read, when they could be split (a ragged row, a line
    # with bad bytes): the rejected-rows file shows them as they were.
    cells: list[str] | None = None

    @property
    def shown(self) -> list[str] | None:
        """The cells to show for this row in the rejected-rows file."""
        return self.values if self.values is not None else self.cells


class _Lines:
    """Physical lines of a binary file, decoded one by one, with their problems remembered."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(encoding)
        self.encoding = encoding
        self.number = 0
        self.problems: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self.stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                # Skip the rest of the line in chunks; memory stays flat.
                while raw and not raw.endswith(b"\n"):
                    raw = self.stream.readline(MAX_LINE_BYTES)
                self.problems[self.number] = f"line {self.number} is longer than 1 MiB"
                yield _OVERLONG + "\n"
                continue
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                self.problems[self.number] = (
                    f"line {self.number} is not valid {self.encoding} "
                    f"(byte 0x{raw[exc.start]:02x} at position {exc.start + 1})"
                )
                yield raw.decode(self.encoding, errors="replace")


def _check_encoding(stream: BinaryIO) -> None:
    head = stream.peek(4)[:4] if hasattr(stream, "peek") else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValidationFailed(
            "the file is UTF-16 encoded; save it as UTF-8 (or pass --encoding utf-16)"
        )


def read_records(
    stream: BinaryIO, encoding: str = "utf-8", *, expected: str = "an 'email' column"
) -> tuple[list[str], Iterator[Record]]:
    """The header and an iterator over the data records (blank lines skipped); `expected`
    says what the header should hold when the file is empty."""
    if encoding.replace("-", "").lower() == "utf8":
        _check_encoding(stream)
        encoding = "utf-8-sig"  # drop a byte-order mark if Excel wrote one
    lines = _Lines(stream, encoding)
    reader = csv.reader(iter(lines), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed(
            f"the file is empty: expected a header line with {expected}"
        ) from None
    except csv.Error as exc:
        raise ValidationFailed(f"line 1: cannot read the header: {exc}") from None
    if lines.problems:
        raise ValidationFailed(f"header: {next(iter(lines.problems.values()))}")
    lines.encoding = encoding.removesuffix("-sig")

    def records() -> Iterator[Record]:
        width = len(header)
        previous_end = lines.number
        while True:
            start = previous_end + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous_end = lines.number
                yield Record(start, None, f"line {start}: malformed CSV: {exc}")
                continue
            end = lines.number
            problems = [
                lines.problems.pop(n)
                for n in range(previous_end + 1, end + 1)
                if n in lines.problems
            ]
            previous_end = end
            if problems:
                cells = None if any(_OVERLONG in v for v in values) else values
                yield Record(start, None, "; ".join(problems), cells)
            elif not values or (len(values) == 1 and not values[0].strip()):
                continue
            elif len(values) != width:
                yield Record(
                    start,
                    None,
                    f"line {start}: has {counted(len(values), 'field')}, the header has {width}",
                    values,
                )
            else:
                yield Record(start, values)

    return header, records()


MULTI_SEPARATOR = "|"  # several values in one cell: tags, lists, choices, contacts


def column_keys(header: list[str]) -> list[str]:
    """The header's column names as keys ("First Name" -> first_name); a column named twice
    stops the import before anything is written."""
    keys = [name.strip().lower().replace(" ", "_").replace("-", "_") for name in header]
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValidationFailed(f"header: column {key!r} appears twice")
        seen.add(key)
    return keys


def batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def rejected_path_for(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected.csv")


class RejectedWriter:
    """Writes rejected rows beside the input, created only when the first row is rejected.

    An importer learns of a batch's rejections in two passes (rows unreadable as read, then
    rows its checks refuse): they are held until `flush` (after each batch) and written in
    line order."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self._file: Any = None
        self._writer: Any = None
        self._pending: list[tuple[int, str, list[str]]] = []

    def write(self, line: int, values: list[str] | None, reason: str) -> None:
        self._pending.append((line, reason, values or []))

    def flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(["line", "reason", *self.header])
        self._pending.sort(key=lambda row: row[0])
        self._writer.writerows([line, reason, *values] for line, reason, values in self._pending)
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()


def cell(value: Any) -> str:
    """A stored value as the importers read it back (booleans, lists joined by '|')."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return MULTI_SEPARATOR.join(map(str, value))
    return str(value)
