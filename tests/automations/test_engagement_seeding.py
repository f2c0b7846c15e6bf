"""The engagement-tagging template installed over existing contacts: each contact is seeded
from its history (its last engagement, or its creation when it never engaged), on day 0 and
at every boundary after it, for both parts of the template working together."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from tests.automations.helpers import activities, make_contacts
from tests.automations.test_engagement_tagging import all_tags, expected_tags
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.automations.templates import EngagementPeriods, install_engagement_tagging
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.db.engine import Database
from tidings.events.service import ingest_events

DAY = timedelta(days=1)
# name: (created days ago, last engaged days ago or None, engaged by a machine only)
HISTORIES: dict[str, tuple[float, float | None]] = {
    "new": (0, None),  # never engaged, created today: engaged for now
    "two_days": (90, 2),
    "seven_days": (90, 7),  # exactly at the boundary: Recent activity has just gone
    "ten_days": (90, 10),
    "twenty_five": (90, 25),
    "forty": (90, 40),
    "never_old": (50, None),  # never engaged, created 50 days ago: Inactive
    "never_fortnight": (15, None),
    "future": (90, -0.5),  # an event stamped half a day ahead: counts as now
    "machine_only": (60, None),  # privacy-proxy opens are no engagement
}


def _seed(database: Database, clock: FakeClock, start: datetime) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name, (created, _) in HISTORIES.items():
        clock.set(start - created * DAY)
        (ids[name],) = make_contacts(database, clock, 1, prefix=name)
    clock.set(start)
    events = [
        {
            "type": "email_opened",
            "contact_id": ids[name],
            "occurred_at": (start - last * DAY).isoformat(),
        }
        for name, (_, last) in HISTORIES.items()
        if last is not None
    ]
    events.append({"type": "email_opened", "contact_id": ids["machine_only"], "machine": True})
    with database.session() as session:
        assert not ingest_events(session, events, now=start, cause="api").rejected
        # Stale tags of an earlier install go: a recent contact is not Inactive.
        contact = contacts.get_contact(session, ids["two_days"])
        contacts.add_tag(session, contact, "Inactive", now=start, cause="api")
    return ids


def _last(start: datetime, name: str) -> datetime:
    created, last = HISTORIES[name]
    if last is None:
        return start - created * DAY
    return min(start, start - last * DAY)


def test_install_seeds_each_contact_from_its_history(database: Database, clock: FakeClock) -> None:
    start = clock.now()
    ids = _seed(database, clock, start)
    with database.session() as session:
        part1, _, enrolled = install_engagement_tagging(session, now=start)
    assert enrolled == len(HISTORIES)
    expected = {
        "new": {"Engaged", "Recent activity"},
        "two_days": {"Engaged", "Recent activity"},
        "seven_days": {"Engaged"},
        "ten_days": {"Engaged"},
        "twenty_five": {"Disengaged"},
        "forty": {"Inactive"},
        "never_old": {"Inactive"},
        "never_fortnight": {"Engaged"},
        "future": {"Engaged", "Recent activity"},
        "machine_only": {"Inactive"},
    }
    tags = all_tags(database)
    assert {name: tags.get(cid, set()) for name, cid in ids.items()} == expected
    with database.session() as session:
        runs = {
            e.contact_id: e
            for e in session.scalars(select(Enrolment).where(Enrolment.automation_id == part1.id))
        }
    where = {name: (runs[cid].state, runs[cid].step) for name, cid in ids.items()}
    assert where == {
        "new": ("active", "wait_recent"),
        "two_days": ("active", "wait_recent"),
        "seven_days": ("active", "wait_disengaged"),
        "ten_days": ("active", "wait_disengaged"),
        "twenty_five": ("active", "wait_inactive"),
        "forty": ("completed", "done"),
        "never_old": ("completed", "done"),
        "never_fortnight": ("active", "wait_disengaged"),
        "future": ("active", "wait_recent"),
        "machine_only": ("completed", "done"),
    }
    assert runs[ids["ten_days"]].entered_at == _last(start, "ten_days")
    assert runs[ids["ten_days"]].wake_at == _last(start, "ten_days") + 21 * DAY
    assert runs[ids["future"]].entered_at == start  # never entered in the future
    # No tag a contact never had at the end is written on the way: no activity says so.
    added = [a.data["tag"] for a in activities(database, ids["forty"], "tag_added")]
    assert added == ["Inactive"]
    assert [a.data["tag"] for a in activities(database, ids["two_days"], "tag_removed")] == [
        "Inactive"
    ]

    # Day by day, every contact follows the rule from its own last engagement; one of the
    # inactive ones engages again on day 3 and part 2 starts it over.
    engine = Engine(database, clock, batch_size=100)
    last = {cid: _last(start, name) for name, cid in ids.items()}
    for day in range(0, 46):
        if day == 3:
            clock.set(start + 3 * DAY)
            with database.session() as session:
                events = [{"type": "link_clicked", "contact_id": ids["forty"], "url": "https://x"}]
                ingest_events(session, events, now=clock.now(), cause="api")
            last[ids["forty"]] = clock.now()
        clock.set(start + day * DAY + timedelta(hours=1))
        engine.run_until_idle()
        tags = all_tags(database)
        wrong = {
            name: (tags.get(cid, set()), expected_tags(clock.now() - last[cid]))
            for name, cid in ids.items()
            if tags.get(cid, set()) != expected_tags(clock.now() - last[cid])
        }
        assert not wrong, f"day {day}: {wrong}"


def test_configured_periods_and_all_engaged(database: Database, clock: FakeClock) -> None:
    start = clock.now()
    ids = _seed(database, clock, start)
    periods = EngagementPeriods(recent_days=3, disengaged_days=12, inactive_days=20)
    with database.session() as session:
        install_engagement_tagging(session, now=start, periods=periods)
    tags = all_tags(database)
    assert tags[ids["two_days"]] == {"Engaged", "Recent activity"}
    assert tags[ids["ten_days"]] == {"Engaged"}
    assert tags[ids["never_fortnight"]] == {"Disengaged"}
    assert tags[ids["twenty_five"]] == {"Inactive"}
    clock.set(start + 2 * DAY + timedelta(minutes=1))  # ten_days turns 12 days
    Engine(database, clock).run_until_idle()
    assert all_tags(database)[ids["ten_days"]] == {"Disengaged"}


def test_all_engaged_keeps_the_old_start(database: Database, clock: FakeClock) -> None:
    start = clock.now()
    ids = _seed(database, clock, start)
    with database.session() as session:
        _, _, enrolled = install_engagement_tagging(session, now=start, all_engaged=True)
    assert enrolled == len(HISTORIES)
    Engine(database, clock).run_until_idle()
    tags = all_tags(database)
    assert all(tags[cid] == {"Engaged", "Recent activity"} for cid in ids.values())
