"""A7: kill real worker processes with SIGKILL at random points; every effect exactly once.

The issue asks for 10,000 contacts; the suite runs 400 (seconds, not minutes) through a
6-step automation with four kills. TIDINGS_TEST_DURABLE_CONTACTS=10000 TIDINGS_TEST_DURABLE_KILLS=12
runs the full size (bench/engine.py (e) too, with kills every 1-4 s).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from tests.automations.helpers import automation, make_contacts
from tests.messaging.helpers import make_template
from tidings.activities.models import Activity
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ContactTag
from tidings.db.engine import Database
from tidings.messaging.models import OutboxMessage

CONTACTS = int(os.environ.get("TIDINGS_TEST_DURABLE_CONTACTS", "400"))
KILLS = int(os.environ.get("TIDINGS_TEST_DURABLE_KILLS", "4"))
SIX_STEPS = """
name: Durable
steps:
  - {id: tag, action: add_tag, tag: Started}
  - {id: score, action: adjust_score, by: 7}
  - {id: mail, action: send_email, template: welcome}
  - {id: field, action: set_field, field: first_name, value: Done}
  - {id: tag2, action: add_tag, tag: Finished}
  - {id: untag, action: remove_tag, tag: Started}
"""


def _worker(database_url: str, tmp: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_SECRET_FILE": str(tmp / "s"),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tidings.cli import main; main()",
            "worker",
            "--batch-size",
            "20",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "worker.log").open("ab"),
    )


def _done(database: Database, automation_id: int) -> int:
    # A deferred (read) transaction: it must not queue for SQLite's write lock behind the worker.
    with database.engine.connect().execution_options(
        **database.dialect.read_only_options()
    ) as connection:
        return (
            connection.scalar(
                select(func.count())
                .select_from(Enrolment)
                .where(Enrolment.automation_id == automation_id, Enrolment.state != "active")
            )
            or 0
        )


def test_sigkill_never_loses_or_doubles_an_effect(
    database: Database, database_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    ids = make_contacts(database, clock, CONTACTS)
    with database.session() as session:
        make_template(session, clock.now())
    a = automation(database, clock, SIX_STEPS)
    with database.session() as session:
        assert (
            enrol_contacts(session, get_automation(session, a.id), now=clock.now(), everyone=True)
            == CONTACTS
        )
    rng = random.Random(7)
    kills = 0
    done = 0
    while done < CONTACTS and kills < KILLS:
        process = _worker(database_url, tmp_path)
        # Kill it at a random moment after it committed at least one batch: mid-work.
        give_up = time.monotonic() + 20
        while _done(database, a.id) == done and time.monotonic() < give_up:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3 if CONTACTS <= 1000 else 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        done = _done(database, a.id)
    progress = _done(database, a.id)
    assert progress > 0, "the workers never got going"
    # Finish in-process (the same code path), then check every contact's effects.
    Engine(database, clock, batch_size=200).run_until_idle()
    with database.session() as session:
        assert _done(database, a.id) == CONTACTS
        states = set(
            session.scalars(select(Enrolment.state).where(Enrolment.automation_id == a.id))
        )
        assert states == {"completed"}

        def per_contact(query: object) -> dict[int, int]:
            return {cid: n for cid, n in session.execute(query).all()}  # type: ignore[call-overload]

        tag_events = per_contact(
            select(Activity.contact_id, func.count())
            .where(Activity.type == "tag_added", Activity.cause == "automation")
            .group_by(Activity.contact_id)
        )
        removed = per_contact(
            select(Activity.contact_id, func.count())
            .where(Activity.type == "tag_removed")
            .group_by(Activity.contact_id)
        )
        scores = per_contact(
            select(Activity.contact_id, func.count())
            .where(Activity.type == "score_changed")
            .group_by(Activity.contact_id)
        )
        mails = per_contact(
            select(OutboxMessage.contact_id, func.count()).group_by(OutboxMessage.contact_id)
        )
        tags = per_contact(
            select(ContactTag.contact_id, func.count()).group_by(ContactTag.contact_id)
        )
        contacts = {c.id: c for c in session.scalars(select(Contact))}
    for cid in ids:
        assert tag_events.get(cid) == 2, cid  # Started and Finished, once each
        assert removed.get(cid) == 1, cid
        assert scores.get(cid) == 1, cid
        assert mails.get(cid) == 1, cid
        assert tags.get(cid) == 1, cid  # only Finished is left
        assert contacts[cid].score == 7
        assert contacts[cid].first_name == "Done"
    print(f"{kills} kills, {progress} of {CONTACTS} done by killed workers")
