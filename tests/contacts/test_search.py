"""Contact search (tidings.contacts.search): any part of an address or a name, any case, `%`
and `_` as themselves, and the index kept current by every write (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from tidings.activities.service import Cause
from tidings.clock import FakeClock
from tidings.contacts import search
from tidings.contacts import service as contacts
from tidings.contacts.erasure import erase_contact
from tidings.contacts.models import Contact
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database

PEOPLE = [
    ContactInput(email="ann.lee@example.com", first_name="Ann", last_name="Lee"),
    ContactInput(email="bob@shop.example.org", first_name="Robert", last_name="MacDonald"),
    ContactInput(email="chris@example.net", first_name="100%", last_name="snake_case"),
    ContactInput(email="dana@example.net", first_name="1000", last_name="snakescase"),
    ContactInput(email="eve@example.net", first_name='Say "hi"', last_name=None),
]


def _found(database: Database, text: str) -> list[str]:
    with database.session() as session:
        query = select(Contact.email).where(search.containing(session, text))
        return sorted(session.scalars(query))


@pytest.fixture
def people(database: Database, clock: FakeClock) -> Database:
    with database.session() as session:
        contacts.upsert_contacts(session, PEOPLE, now=clock.now(), cause=Cause.API)
    return database


@pytest.mark.parametrize(
    ("text", "emails"),
    [
        ("shop.exa", ["bob@shop.example.org"]),  # the middle of an address
        ("EXAMPLE.NET", ["chris@example.net", "dana@example.net", "eve@example.net"]),
        ("obe", ["bob@shop.example.org"]),  # inside a first name
        ("cdon", ["bob@shop.example.org"]),  # inside a last name, other case
        ("ANN", ["ann.lee@example.com"]),
        ("0%", ["chris@example.net"]),  # not "any text after 0"
        ("e_c", ["chris@example.net"]),  # not "e, one character, c"
        ('"hi"', ["eve@example.net"]),
        ("ee", ["ann.lee@example.com"]),  # shorter than a trigram
        ("K", ["chris@example.net", "dana@example.net"]),
        ("nobody", []),
    ],
)
def test_finds_any_part_of_an_address_or_name(
    people: Database, text: str, emails: list[str]
) -> None:
    assert _found(people, text) == emails


def test_every_write_keeps_the_search_current(people: Database, clock: FakeClock) -> None:
    now, cause = clock.now(), Cause.API
    with people.session() as session:
        ann = session.scalars(select(Contact).where(Contact.email == "ann.lee@example.com")).one()
        contacts.update_contact(
            session,
            ann,
            now=now,
            cause=cause,
            email="ann.kim@example.com",
            profile={"last_name": "Kim"},
        )
        contacts.upsert_contacts(
            session,
            [ContactInput(email="bob@shop.example.org", first_name="Bobby")],
            now=now,
            cause=cause,
        )
        dana = session.scalars(select(Contact).where(Contact.email == "dana@example.net")).one()
        contacts.delete_contact(session, dana, now=now, cause=cause)
        erase_contact(session, "eve@example.net", now=now, cause=cause)
        contacts.upsert_contacts(
            session, [ContactInput(email="fay@example.io", last_name="Leeds")], now=now, cause=cause
        )
    assert _found(people, "lee") == ["fay@example.io"]  # Ann is a Kim now
    assert _found(people, "ann.kim") == ["ann.kim@example.com"]
    assert _found(people, "obert") == []
    assert _found(people, "bobby") == ["bob@shop.example.org"]
    assert _found(people, "dana") == []
    assert _found(people, "eve@") == []
    assert _found(people, "example.net") == ["chris@example.net"]


def test_newest_matching_pages_through_old_and_recent_matches(
    database: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same pages whether the newest contacts hold the matches (the walk answers) or
    only old ones do (the index answers)."""
    monkeypatch.setattr(search, "WINDOW", 4)
    with database.session() as session:
        contacts.upsert_contacts(
            session,
            [ContactInput(email=f"{'old' if i < 6 else 'new'}{i}@example.com") for i in range(12)],
            now=clock.now(),
            cause=Cause.API,
        )

    def page(text: str, before: int | None = None) -> list[str]:
        with database.session() as session:
            rows = search.newest_matching(session, select(Contact), text, limit=3, before=before)
            return [row.email for row in rows]

    with database.session() as session:
        ids = {email: cid for email, cid in session.execute(select(Contact.email, Contact.id))}
    assert page("new") == ["new11@example.com", "new10@example.com", "new9@example.com"]
    assert page("old") == ["old5@example.com", "old4@example.com", "old3@example.com"]
    assert page("old", before=ids["old3@example.com"]) == [
        "old2@example.com",
        "old1@example.com",
        "old0@example.com",
    ]
    assert page("example", before=ids["new6@example.com"]) == [
        "old5@example.com",
        "old4@example.com",
        "old3@example.com",
    ]
    assert page("old", before=ids["old0@example.com"]) == []


def test_a_contact_inserted_by_other_sql_can_still_change_and_go(
    database: Database, clock: FakeClock
) -> None:
    """The search table never saw it (only the upsert indexes new contacts); renaming and
    deleting it must work all the same, and the rename makes it findable."""
    now = clock.now()
    with database.session() as session:
        session.execute(
            insert(Contact).values(
                email="raw@example.com",
                status="subscribed",
                score=0,
                fields={},
                created_at=now,
                updated_at=now,
            )
        )
    with database.session() as session:
        raw = session.scalars(select(Contact).where(Contact.email == "raw@example.com")).one()
        contacts.update_contact(
            session, raw, now=now, cause=Cause.API, profile={"first_name": "Zed"}
        )
    assert _found(database, "zed") == ["raw@example.com"]
    with database.session() as session:
        contacts.delete_contact(
            session, contacts.get_contact(session, raw.id), now=now, cause=Cause.API
        )
    assert _found(database, "zed") == []
