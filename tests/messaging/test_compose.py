"""The message the sender builds, as a real SMTP server receives it and a mail parser reads it:
long subjects are folded (RFC 5322 line limits), the text part keeps every link's URL."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from tests.messaging.conftest import Sink
from tests.messaging.helpers import make_contact, make_template
from tests.messaging.test_api import send_all
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.compose import html_to_text


def _send(database: Database, clock: FakeClock, sink: Sink, **template: object) -> EmailMessage:
    with database.session() as session:
        make_template(session, clock.now(), **template)  # type: ignore[arg-type]
        contact = make_contact(session, "ann@example.org", clock.now(), first_name="Ann")
        queue_email(
            session,
            contact_id=contact.id,
            template="welcome",
            message_class="campaign",
            idempotency_key="compose-1",
            now=clock.now(),
        )

    send_all(database, clock, sink)
    [received] = sink.handler.messages
    for line in received.data.split(b"\r\n"):
        assert len(line) <= 998
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


WORDS = " ".join(f"offer{i}" for i in range(800))  # 5,490 characters


@pytest.mark.parametrize(
    "subject",
    [
        WORDS[:5000],
        "x" * 5000,  # one word: sent as encoded-words, which may be cut anywhere
        "Frühlingsangebote für Sie! " * 180,  # non-ASCII
    ],
    ids=["words", "one-word", "non-ascii"],
)
def test_a_5000_character_subject_is_folded_and_read_back_whole(
    database: Database, clock: FakeClock, sink: Sink, subject: str
) -> None:
    subject = subject.strip()
    message = _send(
        database, clock, sink, subject="{{ headline }}", variables={"headline": subject}
    )
    assert message["Subject"] == subject
    head = message.as_bytes().split(b"\n\n")[0]
    subject_lines = head.split(b"Subject:")[1].split(b"\n")
    assert len(subject_lines) > 50  # folded, not one line of 5,000 characters


def test_the_text_part_keeps_every_link_with_its_url(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    html = (
        '<p>See our <a href="https://shop.example.com/spring?a=1&amp;b=2">spring offers</a>.</p>'
        '<p>Or go to <a href="https://shop.example.com/">https://shop.example.com/</a>.</p>'
        '<p><a href="{{ preferences_url }}">Your preferences</a> · '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    )
    message = _send(database, clock, sink, html=html, text=None, track_clicks=False)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "spring offers (https://shop.example.com/spring?a=1&b=2)" in text
    assert "Or go to https://shop.example.com/." in text  # not doubled
    assert "Your preferences (http://testserver/preferences/" in text
    assert "Unsubscribe (http://testserver/u/" in text


def test_html_to_text_links() -> None:
    html = (
        "<p>Hi <b>Ann</b>,<br>read <a class='x' href='https://ex.example/a?x=1&amp;copy=2'>"
        "the <i>news</i></a>, visit <a href=https://ex.example/>ex.example</a>, "
        '<a href="mailto:help@ex.example">help@ex.example</a> or '
        '<a href="mailto:help@ex.example?subject=Hi">write to us</a>.'
        '<a href="https://ex.example/logo"><img src="logo.png" alt=""></a>'
        '<a name="top">Top</a></p>'
    )
    assert html_to_text(html) == (
        "Hi Ann,\nread the news (https://ex.example/a?x=1&copy=2), visit https://ex.example/, "
        "help@ex.example or write to us (mailto:help@ex.example?subject=Hi)."
        "https://ex.example/logoTop\n"
    )
