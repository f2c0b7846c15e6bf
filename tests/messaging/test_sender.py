"""The sender against a real SMTP server on loopback: bytes, DKIM, headers, retries, policy."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage

import dkim
import pytest
from sqlalchemy import select

from tests.messaging.conftest import FakeTokens, Sink, free_port, sender_options
from tests.messaging.helpers import make_contact, make_template
from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.contacts.service import change_status
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.dkim import DkimSigner
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sender import RunStats, Sender, SenderOptions


def run(
    database: Database, clock: FakeClock, options: SenderOptions, tokens: object = None
) -> RunStats:
    async def main() -> RunStats:
        sender = Sender(database, clock, options, tokens=tokens)  # type: ignore[arg-type]
        try:
            return await sender.run_once()
        finally:
            await sender.close()

    return asyncio.run(main())


def queue(
    database: Database,
    clock: FakeClock,
    emails: list[str],
    message_class: str = "campaign",
    **kw: object,
) -> list[int]:
    now = clock.now()
    ids = []
    with database.session() as session:
        make_template(session, now, **kw)  # type: ignore[arg-type]
        for address in emails:
            contact = make_contact(session, address, now, first_name="Ann")
            result = queue_email(
                session,
                contact_id=contact.id,
                template="welcome",
                message_class=message_class,
                idempotency_key=f"k-{address}",
                now=now,
            )
            assert result.queued
            ids.append(contact.id)
    return ids


def statuses(database: Database) -> dict[str, str]:
    with database.session() as session:
        return dict(session.execute(select(OutboxMessage.recipient, OutboxMessage.status)).all())


def test_campaign_message_bytes_dkim_and_unsubscribe_headers(
    database: Database, clock: FakeClock, sink: Sink, dkim_signer: DkimSigner
) -> None:
    [contact_id] = queue(database, clock, ["ann@example.org"])
    stats = run(database, clock, sender_options(sink.port, dkim_signer), FakeTokens())
    assert stats.sent == 1
    [received] = sink.handler.messages
    assert received.rcpt_tos == ["ann@example.org"]
    with database.session() as session:
        token = session.scalar(select(OutboxMessage.message_id))
    assert received.mail_from == f"bounce+{token}@bounces.example.com"
    record = dkim_signer.dns_record().encode()
    assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)
    signature = email.message_from_bytes(received.data)["DKIM-Signature"]
    signed = signature.replace("\r\n", "").replace("\t", "").split("h=")[1].split(";")[0]
    assert "list-unsubscribe" in signed.split(":") and "list-unsubscribe-post" in signed.split(":")
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Hello Ann"
    assert message["Message-ID"] == f"<{token}@example.com>"
    unsubscribe = str(message["List-Unsubscribe"])
    assert "<https://mail.example.com/u/" in unsubscribe
    assert f"<mailto:unsubscribe@example.com?subject=unsubscribe-{token}>" in unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "https://shop.example.com/sale" not in html
    assert f'href="https://mail.example.com/t/c/c-{contact_id}-' in html
    assert f"https://mail.example.com/t/o/o-{contact_id}-{token}.gif" in html
    # the unsubscribe link in the footer is not rewritten
    assert 'href="https://mail.example.com/u/' in html
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("Hi Ann")
    # tampering breaks the signature
    assert not dkim.verify(
        received.data.replace(b"List-Unsubscribe-Post", b"X-Removed"),
        dnsfunc=lambda name, timeout=5: record,
    )
    with database.session() as session:
        types = session.scalars(
            select(Activity.type).where(Activity.contact_id == contact_id)
        ).all()
    assert "email_sent" in types
    assert statuses(database) == {"ann@example.org": "sent"}


def test_transactional_mail_has_no_list_unsubscribe(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    queue(database, clock, ["t@example.org"], message_class="transactional")
    run(database, clock, sender_options(sink.port))
    message = email.message_from_bytes(sink.handler.messages[0].data)
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert "DKIM-Signature" not in message


def test_policy_is_checked_again_at_send_time(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    ids = queue(database, clock, ["stay@example.org", "leave@example.org"])
    with database.session() as session:
        contact = session.get(Contact, ids[1])
        assert contact is not None
        change_status(
            session, contact, "unsubscribed", now=clock.now(), cause="tracking", reason="link"
        )
    stats = run(database, clock, sender_options(sink.port))
    assert stats.sent == 1 and stats.refused == 1
    assert sink.handler.count_by_recipient() == {"stay@example.org": 1}
    assert statuses(database)["leave@example.org"] == "refused"
    with database.session() as session:
        reason = session.scalar(
            select(OutboxMessage.reason).where(OutboxMessage.recipient == "leave@example.org")
        )
        refusals = session.scalars(
            select(Activity.data).where(Activity.type == "email_refused")
        ).all()
    assert reason is not None and reason.startswith("at send time: status unsubscribed")
    assert len(refusals) == 1


def test_4xx_is_retried_with_backoff_5xx_fails_and_unknown_user_bounces(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    queue(database, clock, ["later@example.org", "never@example.org", "nouser@example.org"])
    sink.handler.rcpt_replies["later@example.org"] = ["451 4.7.1 Try again later"]
    sink.handler.data_replies["never@example.org"] = ["554 5.7.1 Message rejected as spam"]
    sink.handler.rcpt_replies["nouser@example.org"] = ["550 5.1.1 No such user"]
    options = sender_options(sink.port, retry_base=timedelta(minutes=1))
    stats = run(database, clock, options)
    assert (stats.sent, stats.deferred, stats.failed) == (0, 1, 2)
    assert statuses(database) == {
        "later@example.org": "deferred",
        "never@example.org": "failed",
        "nouser@example.org": "bounced",
    }
    with database.session() as session:
        contact_status = dict(session.execute(select(Contact.email, Contact.status)).all())
    assert contact_status["nouser@example.org"] == "bounced"
    assert contact_status["never@example.org"] == "subscribed"  # 5.7.1 is not a bad address
    # not yet due: nothing happens
    assert run(database, clock, options).sent == 0
    clock.advance(minutes=1)
    assert run(database, clock, options).sent == 1
    assert sink.handler.count_by_recipient() == {"later@example.org": 1}


def test_gives_up_after_max_attempts(database: Database, clock: FakeClock, sink: Sink) -> None:
    queue(database, clock, ["busy@example.org"])
    sink.handler.rcpt_replies["busy@example.org"] = ["452 4.2.2 Mailbox full"] * 5
    options = sender_options(sink.port, max_attempts=3, retry_base=timedelta(seconds=10))
    for _ in range(3):
        run(database, clock, options)
        clock.advance(hours=1)
    assert statuses(database) == {"busy@example.org": "failed"}
    with database.session() as session:
        reason = session.scalar(select(OutboxMessage.reason))
    assert reason is not None and "gave up after 3 attempts" in reason


def test_server_down_then_up_delivers_once(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    queue(database, clock, ["a@example.org", "b@example.org"])
    stats = run(database, clock, sender_options(free_port()))
    assert stats.deferred == 2 and stats.sent == 0
    clock.advance(hours=1)
    assert run(database, clock, sender_options(sink.port)).sent == 2
    assert sink.handler.count_by_recipient() == {"a@example.org": 1, "b@example.org": 1}


def test_connection_dropped_during_data_is_retried_not_lost(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    queue(database, clock, ["drop@example.org", "ok@example.org"])
    sink.handler.drop_during_data.add("drop@example.org")
    options = sender_options(sink.port, connections=1)
    first = run(database, clock, options)
    assert first.sent == 1 and first.deferred == 1
    clock.advance(hours=1)
    assert run(database, clock, options).sent == 1
    assert sink.handler.count_by_recipient() == {"drop@example.org": 1, "ok@example.org": 1}


def test_two_senders_share_the_outbox_without_duplicates(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    emails = [f"r{i:03d}@example.org" for i in range(120)]
    queue(database, clock, emails)

    async def main() -> list[RunStats]:
        senders = [
            Sender(database, clock, sender_options(sink.port, worker_id=f"w{n}", batch_size=15))
            for n in range(2)
        ]
        try:
            return list(await asyncio.gather(*(s.run_once() for s in senders)))
        finally:
            for s in senders:
                await s.close()

    stats = asyncio.run(main())
    assert sum(s.sent for s in stats) == 120
    assert sink.handler.count_by_recipient() == dict.fromkeys(emails, 1)


def test_expired_lease_of_a_dead_sender_is_taken_over(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    from tidings.messaging.sender import claim

    queue(database, clock, ["a@example.org", "b@example.org"])
    jobs, _, _ = claim(
        database, now=clock.now(), worker_id="dead", limit=10, lease=timedelta(minutes=5)
    )
    assert len(jobs) == 2
    other = sender_options(sink.port, worker_id="alive")
    assert run(database, clock, other).sent == 0  # still leased
    clock.advance(minutes=6)
    assert run(database, clock, other).sent == 2
    assert sink.handler.count_by_recipient() == {"a@example.org": 1, "b@example.org": 1}


def test_database_failure_before_the_dot_sends_nothing_then_retries(
    database: Database, clock: FakeClock, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidings.messaging import sender as sender_module

    queue(database, clock, ["a@example.org"])
    real = sender_module.mark_delivering

    def broken(*args: object, **kwargs: object) -> dict[int, str]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(sender_module, "mark_delivering", broken)
    with pytest.raises(RuntimeError):
        run(database, clock, sender_options(sink.port))
    assert sink.handler.messages == []  # the DATA phase was never finished
    monkeypatch.setattr(sender_module, "mark_delivering", real)
    assert run(database, clock, sender_options(sink.port)).sent == 1  # same worker id: at once
    assert sink.handler.count_by_recipient() == {"a@example.org": 1}


def test_composing_in_worker_processes(
    database: Database, clock: FakeClock, sink: Sink, dkim_signer: DkimSigner
) -> None:
    queue(database, clock, ["p1@example.org", "p2@example.org"])
    options = sender_options(sink.port, dkim_signer, compose_processes=1)
    assert run(database, clock, options, FakeTokens()).sent == 2
    record = dkim_signer.dns_record().encode()
    for received in sink.handler.messages:
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in received.data


def test_global_and_per_domain_rate_limits_with_injected_time(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    queue(database, clock, ["a1@a.example", "a2@a.example", "a3@a.example", "b1@b.example"])
    now = [0.0]
    sent_at: dict[str, float] = {}

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    sink.handler.on_message = lambda handler: sent_at.setdefault(
        handler.messages[-1].rcpt_tos[0], now[0]
    )

    async def main() -> None:
        options = sender_options(
            sink.port, connections=1, rate_per_second=10.0, domain_rate_per_second=0.5
        )
        sender = Sender(database, clock, options, monotonic=lambda: now[0], sleep=sleep)
        try:
            await sender.run_once()
        finally:
            await sender.close()

    asyncio.run(main())
    assert len(sink.handler.messages) == 4
    # a.example: at most one message per 2 s (one connection, so b1 comes after a3)
    assert [sent_at[f"a{i}@a.example"] for i in (1, 2, 3)] == pytest.approx(
        [0.0, 2.0, 4.0], abs=0.2
    )
    assert sent_at["b1@b.example"] <= 4.0


def test_last_check_before_the_dot_refuses_what_changed_after_the_claim(
    database: Database, clock: FakeClock
) -> None:
    from tidings.contacts.models import Suppression
    from tidings.messaging.sender import claim, mark_delivering

    emails = ["ok@a.example", "gone@a.example", "banned@b.example", "dropped@a.example"]
    emails += ["stolen@a.example", "receipt@a.example", "bounced@a.example"]
    queue(database, clock, emails[:5])
    queue(database, clock, emails[5:6], message_class="transactional", name="receipt")
    queue(database, clock, emails[6:], message_class="transactional", name="note")
    jobs, _, _ = claim(
        database, now=clock.now(), worker_id="me", limit=10, lease=timedelta(minutes=5)
    )
    by_email = {j.email: j.id for j in jobs}
    with database.session() as session:
        contacts = {c.email: c for c in session.scalars(select(Contact))}
        for email_, status in [
            ("gone@a.example", "unsubscribed"),
            ("receipt@a.example", "unsubscribed"),  # transactional mail still allowed
            ("bounced@a.example", "bounced"),
        ]:
            change_status(
                session, contacts[email_], status, now=clock.now(), cause="test", reason="t"
            )
        session.add(Suppression(value="@b.example", reason="t", created_at=clock.now()))
        session.delete(contacts["dropped@a.example"])
        session.execute(
            OutboxMessage.__table__.update()  # type: ignore[attr-defined]
            .where(OutboxMessage.id == by_email["stolen@a.example"])
            .values(lease_owner="someone else")
        )
    verdict = mark_delivering(database, list(by_email.values()), now=clock.now(), worker_id="me")
    assert {e: verdict[i] for e, i in by_email.items()} == {
        "ok@a.example": "ok",
        "gone@a.example": "refused",
        "banned@b.example": "refused",
        "dropped@a.example": "refused",
        "stolen@a.example": "lease",
        "receipt@a.example": "ok",
        "bounced@a.example": "refused",
    }
    with database.session() as session:
        rows = {
            r.id: (r.status, r.reason)
            for r in session.execute(
                select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.reason)
            )
        }
    assert rows[by_email["ok@a.example"]] == ("delivering", None)
    assert rows[by_email["receipt@a.example"]] == ("delivering", None)
    assert rows[by_email["stolen@a.example"]][0] == "sending"
    assert rows[by_email["gone@a.example"]] == (
        "refused",
        "at send time: status unsubscribed does not allow campaign mail",
    )
    assert rows[by_email["banned@b.example"]][1] == (
        "at send time: suppressed: address or domain is on the suppression list"
    )
    assert rows[by_email["dropped@a.example"]][1] == "at send time: the contact no longer exists"
    assert rows[by_email["bounced@a.example"]][0] == "refused"


def test_preferences_link_is_signed_when_the_template_shows_it(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    from tidings.messaging.links import LinkSigner

    html = (
        '<p><a href="{{ preferences_url }}">Preferences</a> <a href="https://x.example/">x</a></p>'
    )
    [contact_id] = queue(database, clock, ["pref@example.org"], html=html)
    run(database, clock, sender_options(sink.port), FakeTokens())
    message = email.message_from_bytes(sink.handler.messages[0].data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    expected = LinkSigner("test-secret-key", "https://mail.example.com").preferences_url(contact_id)
    assert f'href="{expected}"' in body  # kept as it is, not turned into a click link
    assert 'href="https://mail.example.com/t/c/' in body
