"""What every input must satisfy wherever it comes from (API, CLI, imports, tracking), so both
databases take or refuse the same values.

- Text holds no NUL character: PostgreSQL refuses it in text columns and in JSON (jsonb) where
  SQLite stores it, so one such value failed a whole transaction on PostgreSQL only.
- Ids fit the 64-bit id columns: a larger number is no id of anything (and overflowed the
  drivers instead of finding nothing).
"""

from __future__ import annotations

from typing import Any

MAX_ID = 2**63 - 1
NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def find_nul(value: Any, path: str = "") -> str | None:
    """The path of the first text in `value` (a string, or any key or value nested in dicts,
    lists and tuples, as parsed JSON is) holding a NUL character, e.g. `tags[2]` or
    `properties.plan` under `path`; None when there is none.

    Iterative, so input nested deeper than Python's recursion limit is walked as well.
    """
    if type(value) is str:  # the common cases, without setting up the walk
        return path if NUL in value else None
    if not isinstance(value, dict | list | tuple) or not value:
        return None
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return where
        elif isinstance(item, dict):
            pending = []
            for key, inner in item.items():
                if isinstance(key, str) and NUL in key:
                    return _join(where, key.replace(NUL, "\\u0000"))
                pending.append((_join(where, str(key)), inner))
            stack.extend(reversed(pending))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(_join(where, i), inner) for i, inner in enumerate(item)]))
    return None


def nul_error(value: Any, name: str) -> str | None:
    """`<path>: must not contain ...` for the first NUL in `value` (named `name`), or None."""
    where = find_nul(value, name)
    return None if where is None else f"{where or 'value'}: {NUL_MESSAGE}"
