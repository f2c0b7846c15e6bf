"""Deal actions keep the engine's durability: real `tidings worker` processes are SIGKILLed at
random moments while deals move through a stage-driven automation; every deal ends with
exactly its effects — one task, one score change, its contact tagged once.

The issue asks for 10,000 deals (TIDINGS_TEST_DURABLE_DEALS=10000 TIDINGS_TEST_DURABLE_KILLS=12);
the suite runs 240 with four kills, in seconds.
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from tests.automations.deal_helpers import make_crm
from tests.automations.helpers import automation
from tests.automations.test_durability import _worker
from tidings.activities.models import Activity
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.clock import FakeClock
from tidings.contacts.models import ContactTag
from tidings.db.engine import Database
from tidings.deals.models import Deal, Stage, Task
from tidings.deals.moves import move_deal_ids
from tidings.deals.service import create_deals, lookups_for
from tidings.deals.validation import DealInput, resolve

DEALS = int(os.environ.get("TIDINGS_TEST_DURABLE_DEALS", "240"))
KILLS = int(os.environ.get("TIDINGS_TEST_DURABLE_KILLS", "4"))
CHUNK = max(20, DEALS // KILLS)
STAGE_DRIVEN = """
name: Stage driven
trigger: {type: deal_stage_changed, pipeline: Sales, to: Proposal}
steps:
  - {id: task, action: add_task, type: call, title: "Send the proposal to {{ contact.email }}"}
  - {id: pause, wait: {seconds: 1}}
  - {id: score, action: adjust_deal_score, by: 5}
  - {id: tag, action: add_tag, tag: Proposed}
"""


def _deals(database: Database, clock: FakeClock, contacts: list[int], lead: int) -> list[int]:
    with database.session() as session:
        items = [
            DealInput(
                {"title", "contact_id", "stage_id"}, title=f"D{i}", contact_id=c, stage_id=lead
            )
            for i, c in enumerate(contacts)
        ]
        lookups = lookups_for(session, items)
        states = [resolve(item, None, lookups, now=clock.now()) for item in items]
        return create_deals(session, states, now=clock.now(), cause="import")


def _tasks(database: Database) -> int:
    with database.engine.connect().execution_options(
        **database.dialect.read_only_options()
    ) as connection:
        return connection.scalar(select(func.count()).select_from(Task)) or 0


def _done(database: Database, automation_id: int) -> int:
    with database.engine.connect().execution_options(
        **database.dialect.read_only_options()
    ) as connection:
        query = select(func.count()).select_from(Enrolment)
        where = (Enrolment.automation_id == automation_id, Enrolment.state != "active")
        return connection.scalar(query.where(*where)) or 0


def test_sigkill_while_deals_move_never_loses_or_doubles_a_deal_effect(
    database: Database, database_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    crm = make_crm(database, clock, contacts=DEALS)
    deal_ids = _deals(database, clock, crm.contacts, crm.stage("Lead"))
    aid = automation(database, clock, STAGE_DRIVEN).id
    Engine(database, clock).run_until_idle()  # the cursor: past the deals' creation
    rng = random.Random(15)
    waiting = list(deal_ids)
    kills = 0
    while waiting or kills < KILLS:
        process = _worker(database_url, tmp_path)
        chunk, waiting = waiting[:CHUNK], waiting[CHUNK:]
        before = _tasks(database)
        if chunk:  # deals keep moving while the workers run (and die)
            with database.session() as session:
                proposal = session.get(Stage, crm.stage("Proposal"))
                assert proposal is not None
                move_deal_ids(session, chunk, proposal, now=clock.now(), cause="api")
        # Kill it at a random moment after it committed something: mid-work.
        give_up = time.monotonic() + 20
        while _tasks(database) == before and time.monotonic() < give_up:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3 if DEALS <= 1000 else 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    progress, tasks_by_workers = _done(database, aid), _tasks(database)
    # Finish in-process (the same code path) past the workers' waits (they run on real time).
    clock.set(datetime.now(UTC) + timedelta(minutes=1))
    finish = Engine(database, clock, batch_size=200)
    finish.run_until_idle()
    clock.advance(timedelta(seconds=2))  # the waits of runs the line above started
    finish.run_until_idle()
    with database.session() as session:
        runs = session.execute(
            select(Enrolment.deal_id, Enrolment.state).where(Enrolment.automation_id == aid)
        ).all()
        assert sorted(d for d, _ in runs) == sorted(deal_ids)  # one run per deal
        assert {s for _, s in runs} == {"completed"}

        def per(query: object) -> dict[int, int]:
            return {key: n for key, n in session.execute(query).all()}  # type: ignore[call-overload]

        tasks = per(select(Task.deal_id, func.count()).group_by(Task.deal_id))
        score_changes = per(
            select(Activity.deal_id, func.count())
            .where(Activity.type == "deal_score_changed", Activity.cause == "automation")
            .group_by(Activity.deal_id)
        )
        scores = {i: s for i, s in session.execute(select(Deal.id, Deal.score))}
        tagged = per(
            select(Activity.contact_id, func.count())
            .where(Activity.type == "tag_added")
            .group_by(Activity.contact_id)
        )
        tags = per(select(ContactTag.contact_id, func.count()).group_by(ContactTag.contact_id))
    for deal_id, contact_id in zip(deal_ids, crm.contacts, strict=True):
        assert tasks.get(deal_id) == 1, deal_id
        assert score_changes.get(deal_id) == 1, deal_id
        assert scores[deal_id] == 5, deal_id
        assert tagged.get(contact_id) == 1 and tags.get(contact_id) == 1, contact_id
    print(f"{kills} kills, {progress} of {DEALS} runs done, {tasks_by_workers} tasks by workers")
