"""Each semantic of issue 4 as a test: runs once/multiple, concurrency, condition waits,
split, score threshold, event filters, refused sends, start/exit, goto loops, pausing."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from tests.automations.helpers import (
    activities,
    automation,
    make_contacts,
    step_entries,
    tags_of,
)
from tests.messaging.helpers import make_template
from tidings.activities.models import Activity
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.automations.service import enrol_contacts, get_automation, set_status
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.events.service import ingest_events
from tidings.messaging.models import OutboxMessage


def _tag(
    database: Database, clock: FakeClock, contact_id: int, tag: str, remove: bool = False
) -> None:
    with database.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        if remove:
            contacts.remove_tag(session, contact, tag, now=clock.now(), cause="api")
        else:
            contacts.add_tag(session, contact, tag, now=clock.now(), cause="api")


def _states(database: Database, automation_id: int) -> Counter[str]:
    with database.session() as session:
        return Counter(
            session.scalars(select(Enrolment.state).where(Enrolment.automation_id == automation_id))
        )


def test_runs_multiple_reenters_only_after_the_run_ended(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    a = automation(
        database,
        clock,
        """
name: Again
trigger: {type: tag_added, tag: Ping}
runs: multiple
steps:
  - {id: score, action: adjust_score, by: 1}
  - {id: hold, wait: {days: 1}}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    _tag(database, clock, cid, "Ping")
    engine.run_until_idle()
    _tag(database, clock, cid, "Ping", remove=True)
    _tag(database, clock, cid, "Ping")  # while the first run waits: ignored
    engine.run_until_idle()
    assert _states(database, a.id) == Counter({"active": 1})
    clock.advance(days=2)
    engine.run_until_idle()
    _tag(database, clock, cid, "Ping", remove=True)
    _tag(database, clock, cid, "Ping")  # after it ended: a second run
    engine.run_until_idle()
    assert _states(database, a.id) == Counter({"completed": 1, "active": 1})
    assert len(activities(database, cid, "score_changed")) == 2


def test_runs_once_under_concurrent_triggers_and_workers(
    database: Database, clock: FakeClock
) -> None:
    a = automation(
        database,
        clock,
        """
name: Once
steps:
  - {id: tag, action: add_tag, tag: Welcomed}
  - {id: score, action: adjust_score, by: 2}
""",
    )
    ids = make_contacts(database, clock, 300)
    errors: list[BaseException] = []

    def enrol_and_work() -> None:
        try:
            with database.session() as session:
                enrol_contacts(
                    session, get_automation(session, a.id), now=clock.now(), everyone=True
                )
            Engine(database, clock, batch_size=25).run_until_idle()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=enrol_and_work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    Engine(database, clock).run_until_idle()
    with database.session() as session:
        per_contact = Counter(
            session.scalars(select(Enrolment.contact_id).where(Enrolment.automation_id == a.id))
        )
        tag_events = session.scalar(
            select(func.count()).select_from(Activity).where(Activity.type == "tag_added")
        )
        scores = set(session.scalars(select(Contact.score)))
    assert set(per_contact.values()) == {1} and len(per_contact) == len(ids)
    assert tag_events == len(ids)
    assert scores == {2}


def test_wait_until_condition_with_timeout(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    automation(
        database,
        clock,
        """
name: Confirm
steps:
  - id: waiting
    wait: {condition: {has_tag: Confirmed}, timeout: {days: 2}, on_timeout: late}
  - {id: ok, action: add_tag, tag: OnTime, next: fin}
  - {id: late, action: add_tag, tag: Late}
  - {id: fin, end: true}
""",
    )
    quick, slow = make_contacts(database, clock, 2)
    with database.session() as session:
        from tidings.automations.service import by_name

        enrol_contacts(
            session, by_name(session, "Confirm"), now=clock.now(), contact_ids=[quick, slow]
        )
    engine.run_until_idle()
    clock.advance(days=1)
    _tag(database, clock, quick, "Confirmed")
    engine.run_until_idle()  # re-checked when the activity arrives, not at the deadline
    assert tags_of(database, quick) == {"Confirmed", "OnTime"}
    assert tags_of(database, slow) == set()
    clock.advance(days=1, seconds=1)
    engine.run_until_idle()
    assert tags_of(database, slow) == {"Late"}


def test_split_is_deterministic_and_near_the_percentages(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    a = automation(
        database,
        clock,
        """
name: AB
steps:
  - {id: ab, split: [{percent: 30, to: a}, {percent: 70, to: b}]}
  - {id: a, action: add_tag, tag: A, next: done}
  - {id: b, action: add_tag, tag: B}
  - {id: done, end: true}
""",
    )
    ids = make_contacts(database, clock, 1000)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
    engine.run_until_idle()
    outcomes = Counter(detail for _, _, detail in step_entries(database, "ab"))
    assert 240 < outcomes["to a"] < 360 and outcomes["to a"] + outcomes["to b"] == len(ids)
    from tidings.automations.definition import SplitStep
    from tidings.automations.interpreter import split_branch

    step = SplitStep.model_validate(
        {"id": "ab", "split": [{"percent": 30, "to": "a"}, {"percent": 70, "to": "b"}]}
    )
    assert [split_branch(a.id, c, step).to for c in ids[:50]] == [
        split_branch(a.id, c, step).to for c in ids[:50]
    ]
    assert ("A" in tags_of(database, ids[0])) == (split_branch(a.id, ids[0], step).to == "a")


def test_score_threshold_crossing_and_event_filters(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    automation(
        database,
        clock,
        """
name: Hot lead
trigger: {type: score_threshold, threshold: 10, direction: up}
steps: [{id: t, action: add_tag, tag: Hot}]
""",
    )
    automation(
        database,
        clock,
        """
name: Big buyer
trigger: {type: event, event: purchase, where: [{property: amount, op: gte, value: 100}]}
steps: [{id: t, action: add_tag, tag: Big}]
""",
    )
    automation(
        database,
        clock,
        """
name: Opener
trigger: {type: event, event: email_opened}
steps: [{id: t, action: add_tag, tag: Opened}]
""",
    )
    low, high, machine = make_contacts(database, clock, 3)
    with database.session() as session:
        for cid, by in ((low, 5), (high, 12)):
            contact = session.get(Contact, cid)
            assert contact is not None
            contacts.adjust_score(session, contact, by, now=clock.now(), cause="api")
        ingest_events(
            session,
            [
                {"type": "purchase", "contact_id": low, "amount": 20},
                {"type": "purchase", "contact_id": high, "amount": 150},
                {"type": "email_opened", "contact_id": machine, "machine": True},
                {"type": "email_opened", "contact_id": low},
            ],
            now=clock.now(),
            cause="api",
        )
    engine.run_until_idle()
    assert tags_of(database, low) == {"Opened"}
    assert tags_of(database, high) == {"Hot", "Big"}
    assert tags_of(database, machine) == set()


def test_refused_send_is_the_step_outcome(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    a = automation(
        database,
        clock,
        """
name: Mail
allow_statuses: [subscribed, unsubscribed]
steps:
  - {id: mail, action: send_email, template: welcome}
  - {id: after, action: add_tag, tag: After}
""",
    )
    (ok,) = make_contacts(database, clock, 1)
    (unsub,) = make_contacts(database, clock, 1, status="unsubscribed", prefix="u")
    with database.session() as session:
        make_template(session, clock.now())
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
    engine.run_until_idle()
    with database.session() as session:
        outbox = dict(session.execute(select(OutboxMessage.contact_id, OutboxMessage.status)).all())
    assert outbox == {ok: "queued", unsub: "refused"}
    log = {contact: outcome for contact, outcome, _ in step_entries(database, "mail")}
    assert log == {ok: "passed", unsub: "refused"}
    assert tags_of(database, unsub) == {"After"}  # the run goes on after a refusal


def test_start_and_exit_other_automations_and_pause(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    long = automation(
        database,
        clock,
        """
name: Long
runs: multiple
steps:
  - {id: a, action: adjust_score, by: 1}
  - {id: w, wait: {days: 10}}
  - {id: b, action: add_tag, tag: LongDone}
""",
    )
    automation(
        database,
        clock,
        """
name: Switch
trigger: {type: tag_added, tag: Switch}
runs: multiple
steps:
  - {id: leave, action: exit_automation, automation: Long}
  - {id: again, action: start_automation, automation: Long}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(
            session, get_automation(session, long.id), now=clock.now(), contact_ids=[cid]
        )
    engine.run_until_idle()
    clock.advance(days=5)
    _tag(database, clock, cid, "Switch")
    engine.run_until_idle()
    assert _states(database, long.id) == Counter({"exited": 1, "active": 1})
    with database.session() as session:
        set_status(session, get_automation(session, long.id), "paused", now=clock.now())
    clock.advance(days=6)
    engine.run_until_idle()
    assert tags_of(database, cid) == {"Switch"}  # paused: the restarted run waits
    with database.session() as session:
        set_status(session, get_automation(session, long.id), "active", now=clock.now())
    clock.advance(days=5)  # the restarted run (day 5) waits 10 days
    engine.run_until_idle()
    assert tags_of(database, cid) == {"Switch", "LongDone"}
    assert len(activities(database, cid, "score_changed")) == 2


def test_goto_loop_with_a_wait(database: Database, clock: FakeClock, engine: Engine) -> None:
    a = automation(
        database,
        clock,
        """
name: Weekly
steps:
  - {id: bump, action: adjust_score, by: 1}
  - {id: week, wait: {days: 7}}
  - {id: again, if: {score: {op: lt, value: 3}}, then: bump, else: stop}
  - {id: stop, end: true}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[cid])
    for _ in range(5):
        engine.run_until_idle()
        clock.advance(days=7)
    engine.run_until_idle()
    with database.session() as session:
        contact = session.get(Contact, cid)
        assert contact is not None and contact.score == 3
    assert _states(database, a.id) == Counter({"completed": 1})


def test_an_activity_committed_late_below_the_cursor_is_not_missed(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    import pytest

    if database.is_sqlite:
        pytest.skip("SQLite has one writer: ids commit in order")
    automation(
        database,
        clock,
        """
name: Late
trigger: {type: tag_added, tag: X}
steps: [{id: t, action: add_tag, tag: Seen}]
""",
    )
    slow_id, fast_id = make_contacts(database, clock, 2)
    with database.session() as session:
        contacts.ensure_tags(session, ["X"], clock.now())
    slow = database.sessionmaker()
    contact = slow.get(Contact, slow_id)
    assert contact is not None
    contacts.add_tag(slow, contact, "X", now=clock.now(), cause="api")  # id N, not committed
    _tag(database, clock, fast_id, "X")  # id N+1, committed first
    engine.run_until_idle()
    assert tags_of(database, fast_id) == {"X", "Seen"}
    slow.commit()
    slow.close()
    engine.run_until_idle()
    assert tags_of(database, slow_id) == {"X", "Seen"}


def test_date_anniversary_trigger_runs_once_a_day(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    from sqlalchemy import update

    automation(
        database,
        clock,
        """
name: Birthday soon
trigger: {type: date_anniversary, field: birthday, days: 3}
runs: multiple
steps: [{id: t, action: add_tag, tag: Soon}, {id: w, wait: {days: 1}}]
""",
    )
    automation(
        database,
        clock,
        """
name: Birthday
trigger: {type: date_anniversary, field: birthday}
runs: multiple
steps: [{id: t, action: add_tag, tag: Today}]
""",
    )
    soon, today, never = make_contacts(database, clock, 3)
    with database.session() as session:
        for cid, born in ((soon, "1990-03-05"), (today, "1985-03-02")):
            session.execute(
                update(Contact).where(Contact.id == cid).values(fields={"birthday": born})
            )
    engine.run_until_idle()
    engine.run_until_idle()  # the same day again enrols nobody again
    assert tags_of(database, soon) == {"Soon"}
    assert tags_of(database, today) == {"Today"}
    assert tags_of(database, never) == set()
    clock.advance(days=3)  # 03-05: the soon one's birthday (the worker catches up day by day)
    engine.run_until_idle()
    assert tags_of(database, soon) == {"Soon", "Today"}
    with database.session() as session:
        runs = session.scalar(select(func.count()).select_from(Enrolment))
    assert runs == 3


def test_exit_by_another_automation_in_the_same_batch_sticks(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    long = automation(
        database,
        clock,
        """
name: Long
runs: multiple
steps:
  - {id: b, action: add_tag, tag: Step}
  - {id: w2, wait: {days: 10}}
""",
    )
    automation(
        database,
        clock,
        """
name: Switch
trigger: {type: tag_added, tag: Switch}
runs: multiple
steps:
  - {id: noted, action: adjust_score, by: 1}
  - {id: leave, action: exit_automation, automation: Long}
  - {id: again, action: start_automation, automation: Long}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(
            session, get_automation(session, long.id), now=clock.now(), contact_ids=[cid]
        )
    _tag(database, clock, cid, "Switch")
    # One batch: Long's run settles in its wait (hop 2) when Switch exits it (hop 2).
    engine.run_until_idle()
    assert _states(database, long.id) == Counter({"exited": 1, "active": 1})


def test_a_deleted_contact_leaves_its_automations(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    a = automation(
        database,
        clock,
        """
name: Gone
steps:
  - {id: w, wait: {days: 1}}
  - {id: t, action: add_tag, tag: Never}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[cid])
    engine.run_until_idle()
    with database.session() as session:
        contact = session.get(Contact, cid)
        assert contact is not None
        contacts.delete_contact(session, contact, now=clock.now(), cause="api")
    clock.advance(days=2)
    engine.run_until_idle()
    with database.session() as session:
        (run,) = session.scalars(select(Enrolment).where(Enrolment.automation_id == a.id))
        assert (run.state, run.end_reason) == ("exited", "contact deleted")


def test_wait_until_a_date_and_notify(database: Database, clock: FakeClock, engine: Engine) -> None:
    from tidings.automations.models import Effect

    a = automation(
        database,
        clock,
        """
name: Dated
steps:
  - {id: w, wait: {until: "2026-03-10T12:00:00Z"}}
  - {id: n, action: notify, to: sales@example.com, subject: Ready}
  - {id: t, action: add_tag, tag: Ready}
""",
    )
    (cid,) = make_contacts(database, clock, 1)
    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=[cid])
    engine.run_until_idle()
    clock.set(clock.now().replace(day=10, hour=11, minute=59))
    engine.run_until_idle()
    assert tags_of(database, cid) == set()
    clock.advance(minutes=1)
    engine.run_until_idle()
    assert tags_of(database, cid) == {"Ready"}
    with database.session() as session:
        effect = session.scalars(select(Effect)).one()
        assert (effect.kind, effect.target, effect.payload["subject"]) == (
            "notify",
            "sales@example.com",
            "Ready",
        )


def test_a_run_that_raises_fails_alone(database: Database, clock: FakeClock) -> None:
    a = automation(
        database,
        clock,
        """
name: Fragile
steps:
  - {id: mail, action: send_email, template: welcome}
  - {id: t, action: add_tag, tag: Done}
""",
    )
    good, bad, other = make_contacts(database, clock, 3)

    def sender(session: object, messages: list[tuple[int, str]], **_: object) -> dict[str, str]:
        if any(contact_id == bad for contact_id, _ in messages):
            raise RuntimeError("template engine exploded")
        return {}  # every message queued

    with database.session() as session:
        enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
    Engine(database, clock, send_email=sender).run_until_idle()
    assert tags_of(database, good) == {"Done"} and tags_of(database, other) == {"Done"}
    with database.session() as session:
        run = session.scalars(select(Enrolment).where(Enrolment.contact_id == bad)).one()
        assert run.state == "failed" and "exploded" in (run.end_reason or "")


def test_a_triggered_run_that_raises_fails_alone(database: Database, clock: FakeClock) -> None:
    """Runs a trigger starts run in the matching transaction; when one raises, that part rolls
    back, the matching itself stands, and the runs are retried one by one in batches."""
    a = automation(
        database,
        clock,
        """
name: Fragile on tag
trigger: {type: tag_added, tag: Go}
steps:
  - {id: mail, action: send_email, template: welcome}
  - {id: t, action: add_tag, tag: Done}
""",
    )
    good, bad = make_contacts(database, clock, 2)

    def sender(session: object, messages: list[tuple[int, str]], **_: object) -> dict[str, str]:
        if any(contact_id == bad for contact_id, _ in messages):
            raise RuntimeError("template engine exploded")
        return {}  # every message queued

    engine = Engine(database, clock, send_email=sender)
    engine.run_until_idle()  # the activity cursor starts here
    with database.session() as session:
        for contact_id in (good, bad):
            contact = session.get(Contact, contact_id)
            assert contact is not None
            contacts.add_tag(session, contact, "Go", now=clock.now(), cause="api")
    engine.run_until_idle()
    assert tags_of(database, good) == {"Go", "Done"}
    assert tags_of(database, bad) == {"Go"}
    with database.session() as session:
        runs = dict(
            session.execute(
                select(Enrolment.contact_id, Enrolment.state).where(Enrolment.automation_id == a.id)
            ).all()
        )
    assert runs == {good: "completed", bad: "failed"}
