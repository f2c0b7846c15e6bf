"""CSV import: idempotent, streaming, and every kind of bad row rejected with its line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tidings.activities.models import Activity
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import get_settings
from tidings.contacts.fields import FieldType
from tidings.contacts.importer import export_contacts, import_contacts
from tidings.contacts.models import Contact, CustomField, ListMembership, Tag
from tidings.db.engine import Database
from tidings.errors import ValidationFailed


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _define_fields(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        session.add_all(
            [
                CustomField(key="age", label="Age", type=FieldType.NUMBER, created_at=clock.now()),
                CustomField(
                    key="birthday", label="Birthday", type=FieldType.DATE, created_at=clock.now()
                ),
                CustomField(
                    key="plan",
                    label="Plan",
                    type=FieldType.SINGLE_CHOICE,
                    options=["free", "pro"],
                    created_at=clock.now(),
                ),
            ]
        )


def _run(database: Database, clock: FakeClock, data: bytes, tmp_path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return import_contacts(
        database,
        io.BufferedReader(io.BytesIO(data)),
        clock=clock,  # type: ignore[arg-type]
        rejected_path=tmp_path / "in.rejected.csv",
        **kwargs,  # type: ignore[arg-type]
    )


def _count(database: Database, model: type) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


GOOD = (
    "email,first_name,last_name,age,birthday,plan,tags\n"
    "ann@example.com,Ann,Lee,41,1985-04-02,pro,VIP|Early\n"
    "BOB@Example.com,Bob,,,,free,\n"
    "cy@example.org,Cy,Ng,29,,,\n"
)


def test_import_creates_contacts_tags_lists_and_activities(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _define_fields(database, clock)
    summary = _run(database, clock, GOOD.encode(), tmp_path, list_name="Newsletter", tag="Imported")
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (3, 0, 0, 0)
    with database.session() as session:
        ann = session.scalar(select(Contact).where(Contact.email == "ann@example.com"))
        assert ann is not None
        assert ann.fields == {"age": 41, "birthday": "1985-04-02", "plan": "pro"}
        assert session.scalar(select(Contact.id).where(Contact.email == "bob@example.com"))
        assert {t.name for t in session.scalars(select(Tag))} == {"VIP", "Early", "Imported"}
        types = [
            a.type for a in session.scalars(select(Activity).where(Activity.contact_id == ann.id))
        ]
        assert (
            types.count("tag_added") == 3
            and "contact_created" in types
            and "list_subscribed" in types
        )
        causes = set(session.scalars(select(Activity.cause)))
        assert causes == {"import"}
    assert _count(database, ListMembership) == 3


def test_import_twice_changes_nothing(database: Database, clock: FakeClock, tmp_path: Path) -> None:
    _define_fields(database, clock)
    _run(database, clock, GOOD.encode(), tmp_path, list_name="Newsletter", tag="Imported")
    activities = _count(database, Activity)
    clock.advance(hours=1)
    summary = _run(database, clock, GOOD.encode(), tmp_path, list_name="Newsletter", tag="Imported")
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 3)
    assert _count(database, Activity) == activities


def test_changed_rows_are_updated_with_field_activities(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _define_fields(database, clock)
    _run(database, clock, GOOD.encode(), tmp_path)
    changed = GOOD.replace("Ann,Lee,41", "Ann,Lee,42")
    summary = _run(database, clock, changed.encode(), tmp_path)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 2)
    with database.session() as session:
        change = session.scalar(select(Activity).where(Activity.type == "field_changed"))
        assert change is not None and change.data == {"field": "age", "old": 41, "new": 42}


def test_bad_rows_are_rejected_with_reasons_and_the_rest_imported(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _define_fields(database, clock)
    data = (
        b"email,first_name,age,plan\n"
        b"ok1@example.com,A,1,free\n"
        b"not-an-email,B,2,free\n"  # line 3: invalid address
        b"ok2@example.com,C,old,free\n"  # line 4: wrong type
        b"ok3@example.com,D,3\n"  # line 5: ragged
        b"ok4@example.com,\xff\xfe,4,free\n"  # line 6: bad UTF-8
        b"ok5@example.com,E,5,gold\n"  # line 7: not a choice
        b"ok6@example.com,F,6,pro\n"
        b"OK6@example.com,G,6,pro\n"  # line 9: duplicate in the file
    )
    summary = _run(database, clock, data, tmp_path)
    assert summary.created == 2 and summary.rejected == 6
    rows = list(csv.reader((tmp_path / "in.rejected.csv").open()))
    assert rows[0][:2] == ["line", "reason"]
    reasons = {int(r[0]): r[1] for r in rows[1:]}
    assert set(reasons) == {3, 4, 5, 6, 7, 9}
    assert "email" in reasons[3]
    assert "fields.age" in reasons[4] and "expected a number" in reasons[4]
    assert "3 fields, the header has 4" in reasons[5]
    assert "not valid utf-8" in reasons[6].lower() and "0xff" in reasons[6]
    assert "fields.plan" in reasons[7]
    assert "duplicate" in reasons[9]
    # In line order, each with the cells it had (as far as they could be read).
    assert [int(r[0]) for r in rows[1:]] == [3, 4, 5, 6, 7, 9]
    cells = {int(r[0]): r[2:] for r in rows[1:]}
    assert cells[3] == ["not-an-email", "B", "2", "free"]
    assert cells[5] == ["ok3@example.com", "D", "3"]
    assert cells[6] == ["ok4@example.com", "\ufffd\ufffd", "4", "free"]
    assert cells[9] == ["OK6@example.com", "G", "6", "pro"]


def test_rows_with_a_nul_character_are_rejected_and_the_rest_imported(
    cli_database: None, database: Database, tmp_path: Path
) -> None:
    """`tidings contacts import`: PostgreSQL refused the whole batch (0 of 2,999 stored)."""
    lines = ["email,first_name,tags"]
    lines += [f"u{i}@example.com,U{i},t{i % 3}" for i in range(2_999)]
    lines.insert(1_001, "bad@example.com,Bad\x00Name,")
    lines.insert(2_002, "bad2@example.com,B,ok|t\x00")
    source = tmp_path / "people.csv"
    source.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["contacts", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert _count(database, Contact) == 2_999
    rows = list(csv.reader((tmp_path / "people.rejected.csv").open()))
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("1002", "line 1002: first_name: must not contain the NUL character (\\u0000)"),
        ("2003", "line 2003: tags[1]: must not contain the NUL character (\\u0000)"),
    ]


def test_unknown_column_stops_before_writing(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with pytest.raises(ValidationFailed, match=r"unknown column.*'shoe_size'"):
        _run(database, clock, b"email,shoe_size\na@example.com,9\n", tmp_path)
    assert _count(database, Contact) == 0
    with pytest.raises(ValidationFailed, match="no 'email' column"):
        _run(database, clock, b"name\nann\n", tmp_path)
    with pytest.raises(ValidationFailed, match="empty"):
        _run(database, clock, b"", tmp_path)
    with pytest.raises(ValidationFailed, match="UTF-16"):
        _run(database, clock, "email\na@b.org\n".encode("utf-16"), tmp_path)


def test_a_50_mb_line_is_rejected_without_holding_it(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as out:
        out.write(b"email,first_name\nbefore@example.com,A\nhuge@example.com,")
        chunk = b"x" * (1 << 20)
        for _ in range(50):
            out.write(chunk)
        out.write(b"\nafter@example.com,B\n")
    with path.open("rb") as stream:
        summary = import_contacts(database, stream, clock=clock, rejected_path=tmp_path / "r.csv")
    assert summary.created == 2 and summary.rejected == 1
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert rows[1][0] == "3" and "longer than 1 MiB" in rows[1][1]


def test_import_does_not_resubscribe_opted_out_contacts(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _run(
        database,
        clock,
        b"email,status\ngone@example.com,unsubscribed\nbad@example.com,bounced\n",
        tmp_path,
    )
    summary = _run(
        database,
        clock,
        b"email,status\ngone@example.com,subscribed\nbad@example.com,subscribed\n",
        tmp_path,
    )
    assert summary.kept_status == 2 and summary.updated == 0
    with database.session() as session:
        assert set(session.scalars(select(Contact.status))) == {"unsubscribed", "bounced"}
    summary = _run(
        database,
        clock,
        b"email,status\ngone@example.com,subscribed\n",
        tmp_path,
        force_resubscribe=True,
        reason="confirmed by phone",
    )
    assert summary.updated == 1
    with database.session() as session:
        forced = session.scalar(select(Activity).where(Activity.type == "status_changed"))
        assert forced is not None and forced.data["forced"] is True
        assert forced.data["reason"] == "confirmed by phone"


def test_a_left_list_is_not_rejoined_by_import(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _run(database, clock, b"email\na@example.com\n", tmp_path, list_name="News")
    with database.session() as session:
        session.execute(ListMembership.__table__.update().values(status="unsubscribed"))
    summary = _run(database, clock, b"email\na@example.com\n", tmp_path, list_name="News")
    assert summary.unchanged == 1
    with database.session() as session:
        assert session.scalar(select(ListMembership.status)) == "unsubscribed"


def test_export_round_trips_through_import(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _define_fields(database, clock)
    _run(database, clock, GOOD.encode(), tmp_path, list_name="Newsletter")
    out = io.StringIO()
    assert export_contacts(database, out) == 3
    text = out.getvalue()
    assert "ann@example.com,Ann,Lee,,subscribed,0,Early|VIP,Newsletter,41,1985-04-02,pro" in text
    exported = "\n".join(
        line.rsplit(",", 1)[0].replace(",0,", ",", 1) for line in text.splitlines()
    )
    header = "email,first_name,last_name,phone,status,tags,lists,age,birthday,plan"
    exported = header + "\n" + "\n".join(exported.splitlines()[1:]) + "\n"
    summary = _run(database, clock, exported.encode(), tmp_path)
    assert summary.unchanged == 3 and summary.rejected == 0


def _contents(database: Database) -> list[tuple[object, ...]]:
    with database.session() as session:
        rows = session.execute(
            select(
                Contact.email,
                Contact.first_name,
                Contact.last_name,
                Contact.status,
                Contact.score,
                Contact.fields,
                Contact.created_at,
            ).order_by(Contact.email)
        )
        return [tuple(row) for row in rows]


def test_an_export_re_imports_unchanged_score_and_created_at_included(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    from tidings.contacts import service as contacts

    _define_fields(database, clock)
    _run(database, clock, GOOD.encode(), tmp_path, list_name="Newsletter")
    with database.session() as session:
        ann = session.scalar(select(Contact.id).where(Contact.email == "ann@example.com"))
        assert ann is not None
        contacts.adjust_scores(session, [ann], 7, cause="admin", now=clock.now())
    before = _contents(database)
    out = io.StringIO()
    export_contacts(database, out)
    exported = out.getvalue().encode()

    # Into the same database: nothing changes.
    clock.advance(days=3)
    summary = _run(database, clock, exported, tmp_path)
    assert (summary.unchanged, summary.rejected, summary.created) == (3, 0, 0)
    assert _contents(database) == before

    # Into an empty one: the same contacts, their score and creation time kept.
    with database.session() as session:
        all_ids = list(session.scalars(select(Contact.id)))
        contacts.delete_contacts(session, all_ids, cause="admin", now=clock.now())
    summary = _run(database, clock, exported, tmp_path)
    assert (summary.created, summary.rejected) == (3, 0)
    assert _contents(database) == before


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("a@example.com,lots,", "score"),
        ("a@example.com,99999999999,", "score"),
        ("a@example.com,1,yesterday", "created_at"),
    ],
)
def test_bad_score_or_created_at_rejects_the_row(
    database: Database, clock: FakeClock, tmp_path: Path, row: str, reason: str
) -> None:
    data = f"email,score,created_at\n{row}\nb@example.com,3,2025-01-02T03:04:05+00:00\n"
    summary = _run(database, clock, data.encode(), tmp_path)
    assert (summary.created, summary.rejected) == (1, 1)
    assert reason in summary.samples[0]
