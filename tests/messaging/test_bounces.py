"""Bounce and complaint intake: parsing real-world shapes, matching, effects; webhook, CLI and
the inbound SMTP listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.messaging import samples
from tests.messaging.conftest import free_port
from tests.messaging.helpers import make_contact, make_template
from tidings.activities.models import Activity
from tidings.cli import app
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.bounces import BounceParseError, apply_report, parse_bounce
from tidings.messaging.inbound import InboundHandler
from tidings.messaging.models import OutboxMessage

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("sample", "kind", "status"),
    [
        (samples.POSTFIX_HARD, "hard", "5.1.1"),
        (samples.POSTFIX_DELAYED, "soft", "4.4.1"),
        (samples.EXIM_HARD, "hard", "5.1.1"),
        (samples.EXCHANGE_HARD, "hard", "5.1.10"),
        (samples.GMAIL_HARD, "hard", "5.1.1"),
        (samples.YAHOO_SOFT, "soft", "4.2.2"),
    ],
)
def test_parse_shapes(sample: str, kind: str, status: str) -> None:
    report = parse_bounce(samples.fill(sample, TOKEN, "ann@example.org"))
    assert report.kind == kind
    assert report.status == status
    assert [r.address for r in report.recipients] == ["ann@example.org"]
    assert report.token == TOKEN
    assert report.diagnostic


def test_parse_multi_recipient_without_token() -> None:
    report = parse_bounce(samples.fill(samples.MULTI_RECIPIENT, TOKEN, "x"))
    assert report.kind == "hard" and report.token is None
    kinds = {r.address: r.kind.value for r in report.recipients}
    assert kinds == {
        "gone@example.org": "hard",
        "full@example.org": "soft",
        "fine@example.org": "none",
    }


def test_parse_complaint_and_bad_input() -> None:
    report = parse_bounce(samples.fill(samples.ARF_COMPLAINT, TOKEN, "ann@example.org"))
    assert report.kind == "complaint" and report.token == TOKEN
    assert report.feedback_type == "abuse"
    assert [r.address for r in report.recipients] == ["ann@example.org"]
    with pytest.raises(BounceParseError, match="feedback-report part"):
        parse_bounce(samples.fill(samples.ARF_MALFORMED, TOKEN, "x"))
    with pytest.raises(BounceParseError):
        parse_bounce(b"   ")
    assert parse_bounce(samples.fill(samples.NOT_A_BOUNCE, TOKEN, "x")).kind == "none"
    # garbage never raises anything but BounceParseError
    for junk in (b"\x00\xff\xfe", b"Content-Type: multipart/report\r\n\r\n--", b"From:\r\n\r\n"):
        with contextlib.suppress(BounceParseError):
            parse_bounce(junk)


def _sent_message(database: Database, clock: FakeClock, email: str) -> tuple[int, str]:
    now = clock.now()
    with database.session() as session:
        if session.scalar(select(Contact.id).where(Contact.email == email)) is None:
            contact = make_contact(session, email, now)
        else:
            contact = session.scalars(select(Contact).where(Contact.email == email)).one()
        if not session.scalar(select(OutboxMessage.id).limit(1)):
            make_template(session, now)
        result = queue_email(
            session,
            contact_id=contact.id,
            template="welcome",
            message_class="campaign",
            idempotency_key=f"k{now.timestamp()}{email}",
            now=now,
        )
        message = session.get(OutboxMessage, result.outbox_id)
        assert message is not None
        message.status = "sent"
        return contact.id, message.message_id


def _status(database: Database, contact_id: int) -> str:
    with database.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.status


def test_hard_bounce_and_complaint_change_status(database: Database, clock: FakeClock) -> None:
    ann, token = _sent_message(database, clock, "ann@example.org")
    with database.session() as session:
        outcome = apply_report(
            session,
            parse_bounce(samples.fill(samples.GMAIL_HARD, token, "ann@example.org")),
            now=clock.now(),
        )
    assert outcome.matched and outcome.status_changed == [ann]
    assert _status(database, ann) == "bounced"
    bob, token = _sent_message(database, clock, "bob@example.org")
    with database.session() as session:
        apply_report(
            session,
            parse_bounce(samples.fill(samples.ARF_COMPLAINT, token, "bob@example.org")),
            now=clock.now(),
        )
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == token))
        assert message is not None and message.status == "complained"
        reasons = session.scalars(
            select(Activity.data).where(
                Activity.contact_id == bob, Activity.type == "status_changed"
            )
        ).all()
    assert _status(database, bob) == "complained"
    assert "spam complaint" in reasons[-1]["reason"]


def test_soft_bounces_count_n_in_m_days(database: Database, clock: FakeClock) -> None:
    ann, _ = _sent_message(database, clock, "ann@example.org")
    for step in range(3):
        _, token = _sent_message(database, clock, "ann@example.org")
        with database.session() as session:
            apply_report(
                session,
                parse_bounce(samples.fill(samples.YAHOO_SOFT, token, "ann@example.org")),
                now=clock.now(),
                soft_limit=3,
                soft_days=7,
            )
        assert _status(database, ann) == ("bounced" if step == 2 else "subscribed")
        clock.advance(days=3)
    # spread out over more than M days: never bounced
    bob, _ = _sent_message(database, clock, "bob@example.org")
    for _ in range(4):
        _, token = _sent_message(database, clock, "bob@example.org")
        with database.session() as session:
            apply_report(
                session,
                parse_bounce(samples.fill(samples.YAHOO_SOFT, token, "bob@example.org")),
                now=clock.now(),
                soft_limit=3,
                soft_days=7,
            )
        clock.advance(timedelta(days=4))
    assert _status(database, bob) == "subscribed"


def test_bounce_webhook(client: TestClient, database: Database, clock: FakeClock) -> None:
    ann, token = _sent_message(database, clock, "ann@example.org")
    response = client.post(
        "/api/v1/webhooks/bounce",
        content=samples.fill(samples.POSTFIX_HARD, token, "ann@example.org"),
        headers={"content-type": "message/rfc822"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["report"]["kind"] == "hard" and body["outcome"]["matched"] is True
    assert _status(database, ann) == "bounced"
    unmatched = client.post(
        "/api/v1/webhooks/bounce",
        content=samples.fill(samples.POSTFIX_HARD, "f" * 32, "nobody@example.org"),
    )
    assert unmatched.status_code == 200 and unmatched.json()["outcome"]["matched"] is False
    bad = client.post(
        "/api/v1/webhooks/bounce", content=samples.fill(samples.ARF_MALFORMED, "", "")
    )
    assert bad.status_code == 422 and "feedback-report" in bad.json()["detail"]


def test_a_bounce_with_nul_characters(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    """PostgreSQL refused the stored diagnostic (a 500, or 451 forever on the SMTP listener).
    NUL bytes are not mail: dropped from the raw message; one decoded from an encoded part
    never leaves the parser (control characters are replaced), so the report is still applied,
    the same on both databases."""
    ann, token = _sent_message(database, clock, "ann@example.org")
    raw = samples.fill(samples.POSTFIX_HARD, token, "ann@example.org")
    with_nul = raw.replace(b"Diagnostic-Code: smtp; 550", b"Diagnostic-Code: smtp; 5\x0050")
    response = client.post("/api/v1/webhooks/bounce", content=with_nul)
    assert response.status_code == 200, response.text
    assert response.json()["report"]["diagnostic"].startswith("550 5.1.1")
    assert _status(database, ann) == "bounced"
    exim = samples.fill(samples.EXIM_HARD, token, "ann@example.org")
    encoded = exim.replace(
        b"Auto-Submitted:", b"Content-Transfer-Encoding: quoted-printable\nAuto-Submitted:"
    ).replace(b"550 5.1.1 The", b"550 5.1.1 =00The")
    applied = client.post("/api/v1/webhooks/bounce", content=encoded)
    assert applied.status_code == 200, applied.text
    assert "\x00" not in applied.text and "\\u0000" not in applied.text


def test_cli_bounces_parse(tmp_path: Path) -> None:
    path = tmp_path / "bounce.eml"
    path.write_bytes(samples.fill(samples.EXCHANGE_HARD, TOKEN, "ann@example.org"))
    executable = Path(sys.executable).parent / "tidings"
    out = subprocess.run(
        [str(executable), "bounces", "parse", str(path)], capture_output=True, check=True
    )
    parsed = json.loads(out.stdout)
    assert parsed["kind"] == "hard" and parsed["recipients"] == ["ann@example.org"]
    assert parsed["status"] == "5.1.10" and "RecipientNotFound" in parsed["diagnostic"]


def _deliver_inbound(
    database: Database, clock: FakeClock, settings: Settings, mails: list[tuple[bytes, str, str]]
) -> InboundHandler:
    """Send each (message, envelope sender, envelope recipient) to a real inbound listener."""
    handler = InboundHandler(database, clock, settings)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:

        async def deliver() -> None:
            for raw, sender, recipient in mails:
                await aiosmtplib.send(
                    raw, sender=sender, recipients=[recipient], hostname="127.0.0.1", port=port
                )

        asyncio.run(deliver())
    finally:
        controller.stop()
    return handler


def test_inbound_listener(database: Database, clock: FakeClock, settings: Settings) -> None:
    ann, token = _sent_message(database, clock, "ann@example.org")
    bob, token_b = _sent_message(database, clock, "bob@example.org")
    settings.unsubscribe_mailto = "unsubscribe@example.com"
    unsubscribe = (
        f"From: bob@example.org\r\nTo: unsubscribe@example.com\r\n"
        f"Subject: unsubscribe-{token_b}\r\n\r\n".encode()
    )
    handler = _deliver_inbound(
        database,
        clock,
        settings,
        [
            (
                samples.fill(samples.EXIM_HARD, token, "ann@example.org"),
                "mailer-daemon@mx.example.net",
                f"bounce+{token}@bounces.example.com",
            ),
            (unsubscribe, "bob@example.org", "unsubscribe@example.com"),
            (
                samples.fill(samples.NOT_A_BOUNCE, "", ""),
                "x@example.org",
                "bounce+nothing@bounces.example.com",
            ),
        ],
    )
    assert [r.kind for r in handler.results] == ["hard", "unsubscribe", "none"]
    assert _status(database, ann) == "bounced"
    assert _status(database, bob) == "unsubscribed"


def _corpus(name: str) -> bytes:
    return next(c.raw for c in samples.corpus() if c.name == name)


def _activities(database: Database, contact_id: int) -> list[str]:
    with database.session() as session:
        return list(
            session.scalars(
                select(Activity.type)
                .where(Activity.contact_id == contact_id, Activity.type.like("email_%"))
                .order_by(Activity.id)
            )
        )


def test_webhook_acts_per_recipient(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    """One DSN, five recipients, five outcomes: hard → bounced, soft → counted, delivered →
    nothing."""
    names = ["gone", "full", "fine", "nobody", "stuffed"]
    with database.session() as session:
        ids = {n: make_contact(session, f"{n}@example.org", clock.now()).id for n in names}
    response = client.post(
        "/api/v1/webhooks/bounce",
        content=_corpus("dsn_mixed"),
        headers={"content-type": "message/rfc822"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rules = {r["address"]: r["rule"] for r in body["report"]["per_recipient"]}
    assert rules["nobody@example.org"] == "dsn diagnostic text: smtp 550 (hard)"
    applied = {a["contact_id"]: a["kind"] for a in body["outcome"]["applied"]}
    assert applied == {
        ids["gone"]: "hard",
        ids["full"]: "soft",
        ids["nobody"]: "hard",
        ids["stuffed"]: "soft",
    }
    assert sorted(body["outcome"]["status_changed"]) == sorted([ids["gone"], ids["nobody"]])
    statuses = {n: _status(database, ids[n]) for n in names}
    assert statuses == {
        "gone": "bounced",
        "full": "subscribed",
        "fine": "subscribed",
        "nobody": "bounced",
        "stuffed": "subscribed",
    }
    assert _activities(database, ids["full"]) == ["email_soft_bounced"]
    assert _activities(database, ids["stuffed"]) == ["email_soft_bounced"]
    assert _activities(database, ids["fine"]) == []


def test_inbound_non_dsn_mixed_and_auto_reply(
    database: Database, clock: FakeClock, settings: Settings
) -> None:
    """A qmail bounce (no DSN) for two recipients acts on each; an auto-reply sent to a real
    message's VERP address changes nothing."""
    with database.session() as session:
        lea = make_contact(session, "lea@example.net", clock.now()).id
        max_ = make_contact(session, "max@mail.example.net", clock.now()).id
    jan, token = _sent_message(database, clock, "jan@example.org")
    auto_reply = _corpus("autoreply_vacation").replace(
        b"2a2b2c2d2e2f20212223242526272829", token.encode()
    )
    handler = _deliver_inbound(
        database,
        clock,
        settings,
        [
            (_corpus("qmail_mixed"), "mailer-daemon@mx.example.net", "news@example.com"),
            (auto_reply, "jan@example.org", f"bounce+{token}@bounces.example.com"),
        ],
    )
    assert [(r.kind, r.matched) for r in handler.results] == [("hard", True), ("none", False)]
    assert _status(database, lea) == "bounced"
    assert _status(database, max_) == "subscribed"
    assert _activities(database, max_) == ["email_soft_bounced"]
    assert _status(database, jan) == "subscribed"
    assert "email_bounced" not in _activities(database, jan)
    with database.session() as session:
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == token))
        assert message is not None and message.status == "sent"


def test_token_match_respects_the_recipients_own_outcome(
    database: Database, clock: FakeClock
) -> None:
    """A report found by its token that names our recipient as delivered (another address of
    an expanded alias failed) leaves our contact alone."""
    ann, token = _sent_message(database, clock, "fine@example.org")
    report = parse_bounce(_corpus("dsn_mixed"), [f"bounce+{token}@bounces.example.com"])
    assert report.kind == "hard" and report.token == token
    with database.session() as session:
        outcome = apply_report(session, report, now=clock.now())
    assert outcome.matched and outcome.contacts == []
    assert _status(database, ann) == "subscribed"


def test_cli_bounces_parse_explains_rules(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "mixed.eml"
    path.write_bytes(_corpus("qmail_mixed"))
    result = runner.invoke(app, ["bounces", "parse", str(path)])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert parsed["rule"] == "text: status 5.1.1 (hard)"
    assert {r["address"]: (r["kind"], r["rule"], r["source"]) for r in parsed["per_recipient"]} == {
        "lea@example.net": ("hard", "text: status 5.1.1 (hard)", "flufl.bounce"),
        "max@mail.example.net": ("soft", "text: status 4.2.2 (soft)", "flufl.bounce"),
    }
    path.write_bytes(_corpus("autoreply_ooo_html"))
    parsed = json.loads(runner.invoke(app, ["bounces", "parse", str(path)]).stdout)
    assert parsed["kind"] == "none" and parsed["recipients"] == []
    assert parsed["rule"] == "auto-reply subject 'automatic reply'"


def test_control_characters_never_reach_the_database(
    client: TestClient, database: Database, clock: FakeClock
) -> None:
    """NUL and raw 8-bit bytes in a report are replaced before anything is stored (PostgreSQL
    refuses NUL in text and JSON)."""
    ann, token = _sent_message(database, clock, "ann@example.org")
    raw = samples.fill(samples.POSTFIX_HARD, token, "ann@example.org").replace(
        b"Recipient address rejected: User", b"Recipient\x00 address rejected: \xff\xfeUser"
    )
    response = client.post("/api/v1/webhooks/bounce", content=raw)
    assert response.status_code == 200, response.text
    assert "\x00" not in response.text and "\\u0000" not in response.text
    assert _status(database, ann) == "bounced"
    with database.session() as session:
        data = session.scalars(
            select(Activity.data).where(
                Activity.contact_id == ann, Activity.type == "email_bounced"
            )
        ).one()
    assert "address rejected" in data["diagnostic"] and "\x00" not in data["diagnostic"]
