"""SQL constructs the segment compiler (tidings.segments.sql) writes once and each database
spells its own way: typed access to JSON values (SQLite's json_extract / json_type, PostgreSQL's
jsonb operators), membership in a JSON array, `member_of` (an IN that PostgreSQL runs from the
subquery's ids) and `by_dialect` (one meaning, a form per planner)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, Float, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# ---- typed access to JSON values, the same on SQLite and PostgreSQL ------------------------


class _JsonScalar(FunctionElement[Any]):
    """A JSON value at a path if it has the wanted JSON type, else NULL.

    Arguments: the JSON column, the SQLite path ('$."a"."b"'), then the keys (for PostgreSQL).
    """

    inherit_cache = True


class json_text(_JsonScalar):
    type = String()
    name = "json_text"
    inherit_cache = True


class json_number(_JsonScalar):
    type = Float()
    name = "json_number"
    inherit_cache = True


class json_bool_text(_JsonScalar):
    """'true' or 'false' when the value is a JSON boolean."""

    type = String()
    name = "json_bool_text"
    inherit_cache = True


class json_present(_JsonScalar):
    """1 when the value exists and is not JSON null, else NULL."""

    type = String()
    name = "json_present"
    inherit_cache = True


class json_array_has(_JsonScalar):
    """True when the value is a JSON array holding this text element. Arguments: the column,
    the value, the SQLite path, then the keys."""

    type = Boolean()
    name = "json_array_has"
    inherit_cache = True


def array_has(column: Any, keys: tuple[str, ...], value: str) -> ColumnElement[bool]:
    path = "$" + "".join(f'."{key}"' for key in keys)
    return json_array_has(
        column, literal(value, String()), literal(path, String()), *(literal(k) for k in keys)
    )


@compiles(json_array_has, "sqlite")
def _sqlite_array_has(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    column, value, path = (compiler.process(c, **kw) for c in list(element.clauses)[:3])
    return (
        f"COALESCE(json_type({column}, {path}) = 'array' AND EXISTS (SELECT 1 FROM "
        f"json_each({column}, {path}) AS e WHERE e.type = 'text' AND e.value = {value}), 0)"
    )


@compiles(json_array_has, "postgresql")
def _pg_array_has(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    column, value = (compiler.process(c, **kw) for c in clauses[:2])
    keys = ", ".join(compiler.process(c, **kw) for c in clauses[3:])
    node = f"jsonb_extract_path({column}, {keys})"
    # COALESCE: a missing key must be "false", never NULL (NOT would keep it NULL).
    return (
        f"COALESCE(jsonb_typeof({node}) = 'array' AND "
        f"{node} @> jsonb_build_array(CAST({value} AS TEXT)), FALSE)"
    )


def json_value(cls: type[_JsonScalar], column: Any, keys: tuple[str, ...]) -> ColumnElement[Any]:
    # Keys are validated names ([A-Za-z_][A-Za-z0-9_]*), so the quoted path is exact.
    path = "$" + "".join(f'."{key}"' for key in keys)
    return cls(column, literal(path, String()), *(literal(k, String()) for k in keys))


_SQLITE_TYPES = {
    "json_text": "= 'text'",
    "json_number": "IN ('integer', 'real')",
    "json_bool_text": "IN ('true', 'false')",
    "json_present": "<> 'null'",
}
_PG_TYPES = {
    "json_text": "= 'string'",
    "json_number": "= 'number'",
    "json_bool_text": "= 'boolean'",
    "json_present": "<> 'null'",
}


@compiles(_JsonScalar, "sqlite")
def _sqlite_json(element: _JsonScalar, compiler: SQLCompiler, **kw: Any) -> str:
    column, path = (compiler.process(c, **kw) for c in list(element.clauses)[:2])
    check = _SQLITE_TYPES[element.name]
    if element.name == "json_present":
        return f"CASE WHEN json_type({column}, {path}) {check} THEN 1 END"
    value = (
        f"json_type({column}, {path})"
        if element.name == "json_bool_text"
        else (f"json_extract({column}, {path})")
    )
    return f"CASE WHEN json_type({column}, {path}) {check} THEN {value} END"


@compiles(_JsonScalar, "postgresql")
def _pg_json(element: _JsonScalar, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    column = compiler.process(clauses[0], **kw)
    keys = ", ".join(compiler.process(c, **kw) for c in clauses[2:])
    node = f"jsonb_extract_path({column}, {keys})"
    text = f"jsonb_extract_path_text({column}, {keys})"
    check = f"jsonb_typeof({node}) {_PG_TYPES[element.name]}"
    if element.name == "json_present":
        return f"CASE WHEN {check} THEN 1 END"
    if element.name == "json_number":
        text = f"CAST({text} AS DOUBLE PRECISION)"
    return f"CASE WHEN {check} THEN {text} END"


class member_of(FunctionElement[bool]):
    """`column IN (subquery)`, which PostgreSQL writes `column = ANY (ARRAY(subquery))`: the
    subquery runs once, and the contacts are then read by primary key for its ids alone.

    For a count whose condition requires recent events (condition_sql's `from_events`):
    PostgreSQL ran `IN` as a hash join that read all 1,000,000 contacts for the 122,000 that
    had opened or clicked in 7 days (and, over 180 days, hashed 3,500,000 events in batches
    on disk: 12.7 s against 2.3 s). Only where the condition needs the event (a top-level
    conjunct): under NOT or OR, PostgreSQL would search the array once per contact.
    SQLite already starts from the subquery's list for IN.

    Arguments: the column, the subquery, the same subquery sorted by its column (for
    PostgreSQL: its index scan sorts the keys anyway, 7 % slower than the query's sort)."""

    name = "member_of"
    inherit_cache = True


@compiles(member_of)
def _member_of(element: member_of, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery, _ = element.clauses
    return f"({compiler.process(column, **kw)} IN {compiler.process(subquery, **kw)})"


@compiles(member_of, "postgresql")
def _pg_member_of(element: member_of, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, in_order = element.clauses
    return f"({compiler.process(column, **kw)} = ANY (ARRAY{compiler.process(in_order, **kw)}))"


class by_dialect(FunctionElement[bool]):
    """One condition written two ways: the first for SQLite, the second for PostgreSQL (where
    their planners want different forms of the same meaning)."""

    name = "by_dialect"
    inherit_cache = True


@compiles(by_dialect)
def _sqlite_form(element: by_dialect, compiler: SQLCompiler, **kw: Any) -> str:
    sqlite_form, _ = element.clauses
    return f"({compiler.process(sqlite_form, **kw)})"


@compiles(by_dialect, "postgresql")
def _postgresql_form(element: by_dialect, compiler: SQLCompiler, **kw: Any) -> str:
    _, postgresql_form = element.clauses
    return f"({compiler.process(postgresql_form, **kw)})"
