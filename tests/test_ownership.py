"""One owner per table: only `tidings.contacts` writes contact data.

A lint over the source (not a run of it): every module of `src/tidings` outside `contacts/`
(migrations exempt) is parsed and searched for a write to a table of tidings.contacts.models -
Core and ORM statements on the models or their tables (`insert(Contact)`,
`update(ContactTag)`, `dialect_insert(session, CONTACTS)`, `ListMembership.__table__.delete()`,
the bulk helpers), raw SQL naming the tables, new ORM objects of those models, and changes to
loaded ones (`contact.status = ...`, `session.delete(mailing_list)`). Other packages call the
contacts write API instead (tidings.contacts.service). The lint's own cases are at the end.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table

import tidings
import tidings.contacts.models as owned_models
from tidings.db.base import Base

SRC = Path(tidings.__file__).parent
OWNER = SRC / "contacts"
EXEMPT = (SRC / "db" / "migrations",)

OWNED_CLASSES: dict[str, type[Base]] = {
    name: value
    for name, value in vars(owned_models).items()
    if isinstance(value, type)
    and issubclass(value, Base)
    and value.__module__ == owned_models.__name__
}
OWNED_TABLES = {str(c.__tablename__): cast(Table, c.__table__) for c in OWNED_CLASSES.values()}
OWNED_NAMES = "|".join(sorted(OWNED_TABLES, key=len, reverse=True))
# SQL that writes one of the tables: the statement's head, the table, then what SQL puts after
# it (so prose such as "delete from lists you no longer use" is not taken for SQL).
RAW_WRITE = re.compile(
    r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO"
    rf"|TRUNCATE(?:\s+TABLE)?|COPY)\s+(?:ONLY\s+)?[\"`]?({OWNED_NAMES})[\"`]?"
    r"(?=\s*(?:$|[(;,]|(?:SET|WHERE|VALUES|SELECT|DEFAULT|USING|RETURNING|AS|FROM|WITH|ON)\b))",
    re.IGNORECASE,
)
# Calls that write the table (or ORM model) given as an argument.
WRITERS = {
    "insert",
    "update",
    "delete",
    "Insert",
    "Update",
    "Delete",
    "dialect_insert",
    "pg_insert",
    "postgresql_insert",
    "sqlite_insert",
    "insert_tuples",
    "bulk_insert",
    "insert_returning_ids",
    "bulk_insert_mappings",
    "bulk_update_mappings",
    "bulk_save_objects",
}
TABLE_METHODS = {"insert", "update", "delete"}
SESSION_WRITES = {"delete", "merge"}
# Calls whose result holds the ORM objects of the entity selected (`select(Contact)`).
LOADERS = {"get", "scalar", "scalars", "execute", "one", "first", "all", "one_or_none"}
OWNED_WORD = re.compile(rf"\b({'|'.join(OWNED_CLASSES)})\b")


def _owned(value: Any) -> str | None:
    """The table name if `value` is an owned model class or table."""
    if isinstance(value, type) and issubclass(value, Base) and value in OWNED_CLASSES.values():
        return str(value.__tablename__)
    if isinstance(value, Table) and OWNED_TABLES.get(value.name) is value:
        return str(value.name)
    return None


class Unknown:
    """A name the lint cannot evaluate."""


UNKNOWN = Unknown()


class Checker:
    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.bound: dict[str, Any] = {}  # the module's names
        self.scopes: list[dict[str, Any]] = []  # the names of the functions being visited
        self.local_returns: dict[str, bool] = {}
        self.docstrings = _docstrings(self.tree)
        self.problems: list[tuple[int, str]] = []

    # -- evaluating names ---------------------------------------------------------------

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tidings"):
                    target = importlib.import_module(alias.name)
                    if alias.asname:
                        self.bound[alias.asname] = target
                    else:
                        self.bound[alias.name.split(".")[0]] = importlib.import_module("tidings")
            return
        if node.level or not node.module or not node.module.startswith("tidings"):
            for alias in node.names:
                self.bound[alias.asname or alias.name] = UNKNOWN
            return
        module = importlib.import_module(node.module)
        for alias in node.names:
            value = getattr(module, alias.name, UNKNOWN)
            if value is UNKNOWN:
                try:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    value = UNKNOWN
            self.bound[alias.asname or alias.name] = value

    def value(self, node: ast.AST) -> Any:
        """What an expression names, as far as names and attributes tell."""
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
            return self.bound.get(node.id, UNKNOWN)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if base is UNKNOWN:
                return UNKNOWN
            return getattr(base, node.attr, UNKNOWN)
        if isinstance(node, ast.Call):
            name = _callee(node)
            if name == "cast" and len(node.args) == 2:
                return self.value(node.args[1])
            if name in ("Table", "table") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and first.value in OWNED_TABLES:
                    return OWNED_TABLES[first.value]
        return UNKNOWN

    def owned(self, node: ast.AST) -> str | None:
        return _owned(self.value(node))

    def _aliases(self, statements: Iterator[ast.AST]) -> dict[str, Any]:
        """Names assigned a model or table in these statements (TABLE = Contact.__table__)."""
        found: dict[str, Any] = {}
        for node in statements:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = self.value(node.value)
                for name in (n.id for t in targets for n in _names(t)):
                    if _owned(value) or name not in found:
                        found[name] = value if _owned(value) else UNKNOWN
        return found

    def _returns_owned(self, call: ast.Call) -> bool:
        """The call returns ORM objects of an owned model (by its return annotation)."""
        if isinstance(call.func, ast.Name) and call.func.id in self.local_returns:
            return self.local_returns[call.func.id]
        function = self.value(call.func)
        if not callable(function) or isinstance(function, type):
            return False
        try:
            annotation = inspect.get_annotations(function).get("return")
        except Exception:  # not a function that has annotations
            return False
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        return bool(OWNED_WORD.search(str(text)))

    def _loads_owned(self, node: ast.AST | None) -> bool:
        """The expression evaluates to loaded ORM objects (one or many) of an owned model."""
        if not isinstance(node, ast.Call):
            return False
        name = _callee(node)
        if name == "get" and node.args and self.owned(node.args[0]):
            return True
        if name in LOADERS:
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Call)
                    and _callee(inner) == "select"
                    and any(isinstance(self.value(a), type) and self.owned(a) for a in inner.args)
                ):
                    return True
        return self._returns_owned(node)

    def _annotated_owned(self, annotation: ast.AST | None) -> bool:
        if annotation is None:
            return False
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            return bool(OWNED_WORD.search(annotation.value))
        return any(
            isinstance(n, ast.Name) and isinstance(self.value(n), type) and self.owned(n)
            for n in ast.walk(annotation)
        )

    # -- the search ---------------------------------------------------------------------

    def run(self) -> list[tuple[int, str]]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._import(node)
        self.bound.update(self._aliases(_own_nodes(self.tree)))
        for node in ast.walk(self.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.local_returns[node.name] = self._annotated_owned(node.returns)
        self._visit(self.tree)
        return sorted(set(self.problems))

    def _visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            self.scopes.append(self._aliases(_own_nodes(node)))
            if not isinstance(node, ast.Lambda):
                self._function(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = RAW_WRITE.search(node.value)
            if match and id(node) not in self.docstrings:
                self.problems.append((node.lineno, f"raw SQL writes {match.group(1)}"))
        for child in ast.iter_child_nodes(node):
            self._visit(child)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            self.scopes.pop()

    def _call(self, node: ast.Call) -> None:
        name = _callee(node)
        if name in WRITERS:
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                table = self.owned(argument)
                if table:
                    self.problems.append((node.lineno, f"{name}() writes {table}"))
        if isinstance(node.func, ast.Attribute) and node.func.attr in TABLE_METHODS:
            table = self.owned(node.func.value)
            if table:
                self.problems.append((node.lineno, f".{node.func.attr}() writes {table}"))
        created = self.value(node.func)
        if isinstance(created, type) and _owned(created):
            self.problems.append((node.lineno, f"creates a {created.__name__} to store"))
        writes = name in SESSION_WRITES and isinstance(node.func, ast.Attribute)
        if writes and node.args and self._loads_owned(node.args[0]):
            self.problems.append((node.lineno, f"session.{name}() of a loaded owned object"))

    def _holders(self, node: ast.AST) -> list[ast.AST]:
        """The targets that `node` binds to ORM objects of an owned model."""
        if isinstance(node, ast.Assign) and self._loads_owned(node.value):
            return list(node.targets)
        if isinstance(node, ast.AnnAssign) and (
            self._annotated_owned(node.annotation) or self._loads_owned(node.value)
        ):
            return [node.target]
        if isinstance(node, ast.For | ast.comprehension) and self._loads_owned(node.iter):
            return [node.target]
        return []

    def _function(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """Changes to ORM objects of owned models loaded or received in this function."""
        held: set[str] = set()
        arguments = function.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            if self._annotated_owned(argument.annotation):
                held.add(argument.arg)
        for node in ast.walk(function):
            held.update(n.id for t in self._holders(node) for n in _names(t))
        if not held:
            return
        for node in ast.walk(function):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                for part in _flatten(target):
                    if (
                        isinstance(part, ast.Attribute)
                        and isinstance(part.value, ast.Name)
                        and part.value.id in held
                    ):
                        line = getattr(node, "lineno", 0)
                        self.problems.append((line, f"sets {part.value.id}.{part.attr}"))
            if isinstance(node, ast.Call) and node.args:
                first = node.args[0]
                if not (isinstance(first, ast.Name) and first.id in held):
                    continue
                name = _callee(node)
                if name == "setattr":
                    self.problems.append((node.lineno, f"setattr() on {first.id}"))
                elif name in SESSION_WRITES and isinstance(node.func, ast.Attribute):
                    self.problems.append((node.lineno, f"session.{name}() of {first.id}"))


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a module or function, without those of the functions inside it."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _own_nodes(child)


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _names(target: ast.AST) -> Iterator[ast.Name]:
    for part in _flatten(target):
        if isinstance(part, ast.Name):
            yield part


def _flatten(target: ast.AST) -> Iterator[ast.AST]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _flatten(element)
    elif isinstance(target, ast.Starred):
        yield from _flatten(target.value)
    else:
        yield target


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _modules() -> Iterator[Path]:
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(OWNER) or any(path.is_relative_to(e) for e in EXEMPT):
            continue
        yield path


def check(source: str) -> list[tuple[int, str]]:
    return Checker(source).run()


def test_only_contacts_writes_contact_data() -> None:
    problems = []
    for path in _modules():
        relative = path.relative_to(SRC.parent)
        for line, what in check(path.read_text()):
            problems.append(f"{relative}:{line}: {what}")
    assert problems == [], (
        "only tidings.contacts writes contact data; call its write API "
        "(tidings.contacts.service) instead:\n" + "\n".join(problems)
    )


def test_the_lint_sees_every_package() -> None:
    checked = {p.relative_to(SRC).parts[0] for p in _modules()}
    assert {"automations", "events", "messaging", "segments"} <= checked
    assert "contacts" not in checked


# ---- the lint's own cases -------------------------------------------------------------------

HEADER = """
from typing import Any, cast
from sqlalchemy import Table, delete, insert, select, text, update
from tidings.contacts import models as m
from tidings.contacts import service
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList
from tidings.db.bulk import dialect_insert, insert_tuples
from tidings.db.models import Suppression
from tidings.messaging.models import OutboxMessage
"""

WRITES = {
    "orm insert": "def f(s): s.execute(insert(Contact).values(email='x'))",
    "module attribute": "def f(s): s.execute(update(m.ContactTag).values(tag_id=1))",
    "table alias": "T = cast(Table, ListMembership.__table__)\ndef f(s): dialect_insert(s, T)",
    "annotated alias": "T: Any = ContactTag.__table__\ndef f(s): s.execute(T.delete())",
    "table method": "def f(s): s.execute(Contact.__table__.update().values(score=1))",
    "re-exported model": "def f(s): s.execute(delete(Suppression))",
    "bulk helper": "def f(s): insert_tuples(s, Contact.__table__, ('email',), [('x',)])",
    "table by name": "def f(s): s.execute(Table('lists', None).insert())",
    "raw update": "def f(s): s.execute(text('UPDATE contacts SET score = 0'))",
    "raw insert": "Q = 'INSERT OR IGNORE INTO contact_tags (contact_id) VALUES (?)'",
    "raw delete": 'Q = f"DELETE FROM list_memberships WHERE list_id = {1}"',
    "raw concatenated": "Q = 'update \"custom_fields\" set ' + 'label = 1'",
    "new object": "def f(s): s.add(Contact(email='x', status='subscribed'))",
    "annotated argument": "def f(s, contact: Contact) -> None:\n    contact.status = 'bounced'",
    "optional argument": "def f(s, c: 'Contact | None') -> None:\n    c.score += 1",
    "session.get": "def f(s):\n    ms = s.get(ListMembership, (1, 2))\n    ms.status, ms.x = 'p', 1",
    "selected entity": "def f(s):\n    for c in s.scalars(select(Contact)):\n        c.fields = {}",
    "service getter": "def f(s):\n    c = service.get_contact(s, 1)\n    setattr(c, 'phone', None)",
    "deleted": "def f(s):\n    s.delete(service.get_list(s, 1))",
    "deleted variable": "def f(s, ml: MailingList):\n    s.delete(ml)",
    "local loader": (
        "def load(s) -> Contact:\n    return s.get(Contact, 1)\n"
        "def f(s):\n    c = load(s)\n    c.email = 'y'"
    ),
}

READS = {
    "select": "def f(s): return s.scalars(select(Contact.id).where(Contact.status == 'x'))",
    "join": "def f(s): return select(ContactTag.contact_id).join(MailingList, 1 == 1)",
    "other table": "def f(s): s.execute(update(OutboxMessage).values(status='x'))",
    "docstring": 'def f(s):\n    """Then UPDATE contacts in bulk."""',
    "prose": "HELP = 'delete from lists you no longer use'",
    "other object": (
        "def f(s):\n    message = s.get(OutboxMessage, 1)\n    message.status = 'bounced'"
    ),
    "read of a loaded contact": "def f(s, c: Contact) -> str:\n    return c.email",
    "a name of another function": (
        "def a(s):\n    table = ContactTag.__table__\n    return table.c\n"
        "def b(s):\n    table = OutboxMessage.__table__\n    s.execute(table.insert())"
    ),
    "write api": "def f(s):\n    service.add_tags(s, [1], {'x': 1}, cause='api', now=None)",
}


@pytest.mark.parametrize("case", sorted(WRITES))
def test_the_lint_finds(case: str) -> None:
    assert check(HEADER + WRITES[case]) != [], case


@pytest.mark.parametrize("case", sorted(READS))
def test_the_lint_leaves_alone(case: str) -> None:
    assert check(HEADER + READS[case]) == [], case
