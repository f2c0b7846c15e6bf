"""The set-based write API of contacts: ids or a SELECT of ids, a few statements however many
contacts, the activity rows of exactly the contacts that changed, per-contact refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.statements import statements
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, ContactTag, CustomField, ListMembership
from tidings.db.engine import Database
from tidings.errors import ValidationFailed


def _contacts(database: Database, clock: FakeClock, n: int, **kw: Any) -> list[int]:
    with database.session() as session:
        report = contacts.upsert_contacts(
            session,
            [contacts.ContactInput(email=f"w{i}@example.com", **kw) for i in range(n)],
            now=clock.now(),
            cause="api",
        )
    return report.contact_ids


def _history(session: Session, kind: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = session.execute(
        select(Activity.contact_id, Activity.cause, Activity.data)
        .where(Activity.type == kind)
        .order_by(Activity.id)
    )
    return [(cid, cause, data) for cid, cause, data in rows]


def test_tags_by_ids_and_by_select(database: Database, clock: FakeClock) -> None:
    a, b, c = _contacts(database, clock, 3)
    now = clock.now()
    with database.session() as session:
        tags = contacts.ensure_tags(session, ["Red", "Blue"], now)
        first = contacts.add_tags(session, [a, b], {"Red": tags["Red"]}, cause="api", now=now)
        again = contacts.add_tags(session, [a, b], {"Red": tags["Red"]}, cause="api", now=now)
        chosen = select(Contact.id).where(Contact.id != a)
        ordered = {"Red": tags["Red"], "Blue": tags["Blue"]}  # the rows follow this order
        both = contacts.add_tags(session, chosen, ordered, cause="import", now=now)
        added = _history(session, "tag_added")
    assert (first.changed, again.changed, both.changed) == ([a, b], [], [b, c])
    assert [(cid, cause, data["tag"]) for cid, cause, data in added] == [
        (a, "api", "Red"),
        (b, "api", "Red"),
        (c, "import", "Red"),
        (b, "import", "Blue"),
        (c, "import", "Blue"),
    ]
    with database.session() as session:
        gone = contacts.remove_tags(session, [a, b, c], {"Red": tags["Red"]}, cause="api", now=now)
        removed = _history(session, "tag_removed")
        left = set(session.execute(select(ContactTag.contact_id, ContactTag.tag_id)).all())
    assert gone.changed == [a, b, c]
    assert [data for _, _, data in removed] == [{"tag": "Red", "tag_id": tags["Red"]}] * 3
    assert left == {(b, tags["Blue"]), (c, tags["Blue"])}


def test_a_tag_step_is_the_same_statements_for_ten_or_four_hundred(
    database: Database, clock: FakeClock
) -> None:
    ids = _contacts(database, clock, 410)
    now = clock.now()
    with database.session() as session:
        tags = contacts.ensure_tags(session, ["One", "Two"], now)
    counts = []
    for part in (ids[:10], ids[10:]):
        with statements(database) as seen, database.session() as session:
            assert len(contacts.add_tags(session, part, tags, cause="api", now=now).changed) == len(
                part
            )
        counts.append(len(seen))
    assert counts[0] == counts[1]


def test_subscribe_refuses_a_rejoin_and_names_missing_contacts(
    database: Database, clock: FakeClock
) -> None:
    a, b, c, d = _contacts(database, clock, 4)
    now = clock.now()
    with database.session() as session:
        news = contacts.get_list(session, contacts.ensure_lists(session, ["News"], now)["News"])
        contacts.subscribe(session, [a, b], news, cause="api", now=now)
        contacts.unsubscribe(session, [b], news, cause="api", now=now)
        contacts.set_pending(session, c, news.id, now=now)
        changes = contacts.subscribe(session, [a, b, c, d, 999_999], news, cause="api", now=now)
    assert changes.changed == [c, d]  # a is on it; the pending one is confirmed
    assert changes.refused == {
        b: "contact unsubscribed from list 'News'; rejoining needs force_resubscribe=true",
        999_999: contacts.NO_CONTACT,
    }
    with database.session() as session:
        forced = contacts.subscribe(
            session, [b], news, cause="api", now=now, force_resubscribe=True
        )
        members = dict(
            session.execute(select(ListMembership.contact_id, ListMembership.status)).all()
        )
        joined = [cid for cid, _, _ in _history(session, "list_subscribed")]
    assert forced.changed == [b] and forced.refused == {}
    assert members == {a: "active", b: "active", c: "active", d: "active"}
    assert joined == [a, b, c, d, b]


def test_by_segment_pending_memberships_wait_for_their_confirmation(
    database: Database, clock: FakeClock
) -> None:
    a, b, c = _contacts(database, clock, 3)
    now = clock.now()
    everyone = select(Contact.id)
    with database.session() as session:
        news = contacts.get_list(session, contacts.ensure_lists(session, ["News"], now)["News"])
        contacts.set_pending(session, a, news.id, now=now)
        joined = contacts.subscribe(
            session, everyone, news, cause="api", now=now, include_pending=False
        )
        left = contacts.unsubscribe(
            session, everyone, news, cause="api", now=now, include_pending=False
        )
        members = dict(
            session.execute(select(ListMembership.contact_id, ListMembership.status)).all()
        )
        no_one = contacts.unsubscribe(session, [b, 424_242], news, cause="api", now=now)
    assert (joined.changed, joined.refused, left.changed) == ([b, c], {}, [b, c])
    assert members == {a: "pending", b: "unsubscribed", c: "unsubscribed"}
    assert (no_one.changed, no_one.refused) == ([], {424_242: contacts.NO_CONTACT})


def test_status_per_contact_reason_stickiness_and_only_from(
    database: Database, clock: FakeClock
) -> None:
    a, b, c, d = _contacts(database, clock, 4)
    now = clock.now()
    with database.session() as session:
        contacts.set_status(session, [b], "unsubscribed", cause="api", now=now)
        contacts.set_status(session, [c], "complained", cause="api", now=now)
        back = contacts.set_status(session, [a, b, c, 777], "subscribed", cause="api", now=now)
        bounced = contacts.set_status(
            session,
            select(Contact.id),
            "bounced",
            cause="tracking",
            now=now,
            reason={a: "hard bounce 5.1.1", d: "hard bounce 5.1.2"},
            only_from={"subscribed", "unsubscribed"},
        )
        statuses = dict(session.execute(select(Contact.id, Contact.status)).all())
        history = [(cid, data) for cid, _, data in _history(session, "status_changed")]
    assert back.changed == []
    assert back.refused == {
        b: "contact is unsubscribed; moving it to subscribed needs an explicit resubscribe "
        "(force_resubscribe=true with a reason)",
        c: "contact is complained; moving it to subscribed needs an explicit resubscribe "
        "(force_resubscribe=true with a reason)",
        777: contacts.NO_CONTACT,
    }
    assert bounced.changed == [a, b, d]
    assert statuses == {a: "bounced", b: "bounced", c: "complained", d: "bounced"}
    assert history[-3:] == [
        (
            a,
            {"old": "subscribed", "new": "bounced", "reason": "hard bounce 5.1.1", "forced": False},
        ),
        (b, {"old": "unsubscribed", "new": "bounced", "reason": None, "forced": False}),
        (
            d,
            {"old": "subscribed", "new": "bounced", "reason": "hard bounce 5.1.2", "forced": False},
        ),
    ]
    with database.session() as session:
        forced = contacts.set_status(
            session,
            [b],
            "subscribed",
            cause="admin",
            now=now,
            reason="asked",
            force_resubscribe=True,
        )
        (last,) = _history(session, "status_changed")[-1:]
    assert forced.changed == [b]
    assert last == (
        b,
        "admin",
        {"old": "bounced", "new": "subscribed", "reason": "asked", "forced": True},
    )
    with database.session() as session, pytest.raises(ValidationFailed, match="not one of"):
        contacts.set_status(session, [a], "gone", cause="api", now=now)


def test_scores_and_fields(database: Database, clock: FakeClock) -> None:
    a, b = _contacts(database, clock, 2, fields={})
    now = clock.now()
    with database.session() as session:
        session.add(CustomField(key="age", label="Age", type="number", created_at=now))
        session.add(
            CustomField(
                key="plan",
                label="Plan",
                type="single_choice",
                options=["free", "pro"],
                created_at=now,
            )
        )
    with database.session() as session:
        assert contacts.adjust_scores(session, [a, b], 5, cause="api", now=now) == {a: 5, b: 5}
        assert contacts.adjust_scores(
            session, select(Contact.id).where(Contact.id == b), -2, cause="api", now=now
        ) == {b: 3}
        first = contacts.set_fields(
            session,
            [a, b],
            {"age": "41", "first_name": " Ann ", "plan": "pro"},
            cause="api",
            now=now,
        )
        cleared = contacts.set_fields(
            session, [a], {"plan": None, "phone": ""}, cause="api", now=now
        )
        rows = dict(session.execute(select(Contact.id, Contact.fields)).all())
        names = set(session.scalars(select(Contact.first_name)))
        changed = [(cid, data) for cid, _, data in _history(session, "field_changed")]
        scores = [data for _, _, data in _history(session, "score_changed")]
    assert first.changed == [a, b] and cleared.changed == [a]
    assert rows == {a: {"age": 41}, b: {"age": 41, "plan": "pro"}}
    assert names == {"Ann"}
    assert changed[:3] == [
        (a, {"field": "first_name", "old": None, "new": "Ann"}),
        (a, {"field": "age", "old": None, "new": 41}),
        (a, {"field": "plan", "old": None, "new": "pro"}),
    ]
    assert changed[-1] == (a, {"field": "plan", "old": "pro", "new": None})
    assert scores[-1] == {"old": 5, "new": 3, "by": -2}
    with database.session() as session:
        with pytest.raises(ValidationFailed) as caught:
            contacts.set_fields(session, [a], {"age": "old", "plan": "gold"}, cause="api", now=now)
        fields = dict(session.execute(select(Contact.id, Contact.fields)).all())
    assert [e["field"] for e in caught.value.errors] == ["fields.age", "fields.plan"]
    assert fields == rows  # nothing was written


def test_delete_contacts_takes_tags_and_lists_with_them(
    database: Database, clock: FakeClock
) -> None:
    a, b = _contacts(database, clock, 2, tags=["VIP"], lists=["News"])
    later = datetime(2026, 4, 1, tzinfo=UTC)
    with database.session() as session:
        assert contacts.delete_contacts(session, [a, 5_555], cause="api", now=later) == [a]
        tagged = set(session.scalars(select(ContactTag.contact_id)))
        members = set(session.scalars(select(ListMembership.contact_id)))
        deleted = _history(session, "contact_deleted")
    assert tagged == members == {b}
    assert deleted == [(a, "api", {"email": "w0@example.com"})]
