"""Kill the sender process mid-broadcast (SIGKILL) and restart it: every eligible
recipient receives exactly one message, counted at a real SMTP server.

The issue asks for 20,000 recipients; the test uses 600 to stay within a few seconds (the
mechanism does not depend on the size; bench/send.py runs 20,000 through the same code).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import func, select

from tests.messaging.conftest import Sink
from tests.messaging.helpers import make_contact, make_template
from tidings.clock import FakeClock
from tidings.contacts.models import ListMembership, MailingList
from tidings.db.engine import Database
from tidings.messaging.broadcasts import create_broadcast, queue_broadcast
from tidings.messaging.models import OutboxMessage

# TIDINGS_TEST_SEND_RECIPIENTS=20000 runs the full size (about two minutes).
RECIPIENTS = int(os.environ.get("TIDINGS_TEST_SEND_RECIPIENTS", "600"))
UNSUBSCRIBED = 50


def _setup(database: Database, clock: FakeClock) -> int:
    now = clock.now()
    with database.session() as session:
        template = make_template(session, now)
        mailing_list = MailingList(name="All", double_opt_in=False, created_at=now)
        session.add(mailing_list)
        session.flush()
        for i in range(RECIPIENTS + UNSUBSCRIBED):
            status = "subscribed" if i < RECIPIENTS else "unsubscribed"
            contact = make_contact(session, f"p{i:05d}@example.org", now, status=status)
            session.add(
                ListMembership(
                    contact_id=contact.id,
                    list_id=mailing_list.id,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        broadcast = create_broadcast(
            session,
            name="Big",
            template_id=template.id,
            list_id=mailing_list.id,
            segment=None,
            scheduled_at=None,
            now=now,
        )
        queue_broadcast(session, broadcast, now=now)
        return broadcast.id


def _command(database_url: str, sink: Sink, key_file: Path) -> tuple[list[str], dict[str, str]]:
    executable = Path(sys.executable).parent / "tidings"
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_SMTP_URL": sink.url,
        "TIDINGS_SECRET_KEY": "test-secret-key",
        "TIDINGS_MAIL_FROM": "News <news@example.com>",
        "TIDINGS_BOUNCE_DOMAIN": "bounces.example.com",
        "TIDINGS_DKIM_SELECTOR": "s1",
        "TIDINGS_DKIM_DOMAIN": "example.com",
        "TIDINGS_DKIM_PRIVATE_KEY_FILE": str(key_file),
        "TIDINGS_SMTP_CONNECTIONS": "4",
    }
    return [str(executable), "mail", "send", "--worker-id", "sender-1", "--batch", "200"], env


def test_killed_and_restarted_sends_exactly_once(
    database: Database,
    database_url: str,
    clock: FakeClock,
    sink: Sink,
    tmp_path: Path,
    dkim_key: bytes,
) -> None:
    broadcast_id = _setup(database, clock)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(dkim_key)
    command, env = _command(database_url, sink, key_file)
    reached = threading.Event()
    target = [RECIPIENTS // 4]

    def on_message(handler: object) -> None:
        if len(sink.handler.messages) >= target[0]:
            reached.set()

    sink.handler.on_message = on_message
    for kill_at in (RECIPIENTS // 3,):
        target[0] = kill_at
        reached.clear()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reached.wait(timeout=max(60, RECIPIENTS / 20)), process.communicate(timeout=5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert len(sink.handler.messages) < RECIPIENTS  # really killed mid-broadcast
    sink.handler.on_message = None
    finished = subprocess.run(
        command, env=env, capture_output=True, timeout=max(90, RECIPIENTS / 10)
    )
    assert finished.returncode == 0, finished.stderr.decode()
    counts = sink.handler.count_by_recipient()
    expected = {f"p{i:05d}@example.org": 1 for i in range(RECIPIENTS)}
    duplicates = {k: v for k, v in counts.items() if v != 1}
    assert duplicates == {}
    assert counts == expected
    with database.session() as session:
        by_status = dict(
            session.execute(
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.broadcast_id == broadcast_id)
                .group_by(OutboxMessage.status)
            ).all()
        )
    assert by_status == {"sent": RECIPIENTS, "refused": UNSUBSCRIBED}
