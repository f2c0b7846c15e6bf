"""Engine semantics: triggers, steps, chaining, runs once/multiple, status policy, versions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.automations.helpers import activities, automation, make_contacts, tags_of
from tidings.automations.engine import Engine
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.db.engine import Database


def _add_tag(database: Database, clock: FakeClock, contact_id: int, tag: str) -> None:
    with database.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        contacts.add_tag(session, contact, tag, now=clock.now(), cause="api")


def test_tag_trigger_runs_actions_and_chains_in_one_pass(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    automation(
        database,
        clock,
        """
name: A
trigger: {type: tag_added, tag: Lead}
steps:
  - {id: t, action: add_tag, tag: Warm}
  - {id: s, action: adjust_score, by: 3}
""",
    )
    automation(
        database,
        clock,
        """
name: B
trigger: {type: tag_added, tag: Warm}
steps:
  - {id: t, action: add_tag, tag: [Hot, Nurtured]}
  - {id: r, action: remove_tag, tag: Lead}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    _add_tag(database, clock, cid, "Lead")
    engine.run_until_idle()
    assert tags_of(database, cid) == {"Warm", "Hot", "Nurtured"}
    score = activities(database, cid, "score_changed")
    assert [(a.data["old"], a.data["new"], a.cause) for a in score] == [(0, 3, "automation")]
    added = [a.data["tag"] for a in activities(database, cid, "tag_added")]
    assert sorted(added) == ["Hot", "Lead", "Nurtured", "Warm"]
    # Running again changes nothing: runs once.
    _add_tag(database, clock, cid, "Lead")  # already there: no activity, no trigger
    engine.run_until_idle()
    assert len(activities(database, cid, "score_changed")) == 1


def test_waits_if_else_and_goal(database: Database, clock: FakeClock, engine: Engine) -> None:
    a = automation(
        database,
        clock,
        """
name: Welcome
trigger: {type: list_subscribed, list: Newsletter}
steps:
  - {id: w, wait: {days: 2}}
  - {id: check, if: {has_tag: VIP}, then: vip, else: normal}
  - {id: normal, action: add_tag, tag: Normal, next: done}
  - {id: vip, action: add_tag, tag: GotVIP}
  - {id: done, wait: {days: 30}}
  - {id: after, action: add_tag, tag: Late}
goals:
  - {id: bought, when: {has_tag: Buyer}, jump_to: vip}
""",
    )
    ids = make_contacts(database, clock, 3)
    with database.session() as session:
        newsletter = contacts.ensure_lists(session, ["Newsletter"], clock.now())["Newsletter"]
        mailing_list = session.get(contacts.MailingList, newsletter)
        for cid in ids:
            contact = session.get(Contact, cid)
            assert contact is not None and mailing_list is not None
            contacts.subscribe_list(session, contact, mailing_list, now=clock.now(), cause="api")
    engine.run_until_idle()
    _add_tag(database, clock, ids[1], "VIP")
    clock.advance(days=1)
    engine.run_until_idle()
    assert tags_of(database, ids[0]) == set()
    _add_tag(database, clock, ids[2], "Buyer")  # goal: jumps at once, before the wait ends
    engine.run_until_idle()
    assert tags_of(database, ids[2]) == {"Buyer", "GotVIP"}
    clock.advance(days=1)
    engine.run_until_idle()
    assert tags_of(database, ids[0]) == {"Normal"}
    assert tags_of(database, ids[1]) == {"VIP", "GotVIP"}
    clock.advance(days=31)
    engine.run_until_idle()
    assert "Late" in tags_of(database, ids[0])
    assert "Late" in tags_of(database, ids[2])
    with database.session() as session:
        from tidings.automations.service import step_counts

        counts = {c["id"]: c for c in step_counts(session, get_automation(session, a.id))}
    assert counts["w"]["passed"] == 2  # the goal took contact 2 out of the wait
    assert counts["after"]["passed"] == 3
    assert counts["w"]["waiting"] == 0


def test_bulk_enrolment_and_status_policy(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    a = automation(
        database,
        clock,
        """
name: Drip
steps:
  - {id: first, action: add_tag, tag: One}
  - {id: w, wait: {hours: 5}}
  - {id: second, action: add_tag, tag: Two}
""",
    )
    ids = make_contacts(database, clock, 5)
    (bounced,) = make_contacts(database, clock, 1, status="bounced", prefix="b")
    with database.session() as session:
        assert (
            enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
            == 5
        )
    engine.run_until_idle()
    assert tags_of(database, bounced) == set()
    with database.session() as session:
        contact = session.get(Contact, ids[0])
        assert contact is not None
        contacts.change_status(session, contact, "complained", now=clock.now(), cause="api")
    engine.run_until_idle()
    clock.advance(timedelta(hours=6))
    engine.run_until_idle()
    assert tags_of(database, ids[0]) == {"One"}
    assert all(tags_of(database, cid) == {"One", "Two"} for cid in ids[1:])
    with database.session() as session:
        from tidings.automations.models import Enrolment

        states = dict(session.execute(select(Enrolment.contact_id, Enrolment.state)).all())
    assert states[ids[0]] == "exited"
    assert {states[c] for c in ids[1:]} == {"completed"}
