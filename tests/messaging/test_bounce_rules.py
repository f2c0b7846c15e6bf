"""The classification rules one by one: wording (several languages), status codes in text,
precedence, DSN fields, auto-replies, and how report addresses are cleaned."""

from __future__ import annotations

import email

import pytest

from tidings.messaging.bounce_rules import (
    BounceKind,
    Headers,
    classify_dsn,
    classify_text,
    not_a_bounce,
    notice_shape,
)
from tidings.messaging.bounce_text import addresses_in, clean_address, notice_text, paragraphs


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Recipient address rejected: User unknown in local recipient table", "hard"),
        ("No such user here", "hard"),
        ("Requested action not taken: mailbox unavailable", "hard"),
        ("The mailbox does not exist", "hard"),
        ("Address rejected", "hard"),
        ("Recipient rejected by policy", "hard"),
        ("Invalid recipient", "hard"),
        ("The account has been disabled", "hard"),
        ("Account disabled", "hard"),
        ("ann is not a valid mailbox", "hard"),
        ("The user's mailbox is full", "soft"),
        ("Mailbox over quota", "soft"),
        ("user is over quota", "soft"),
        ("Server busy, try again later", "soft"),
        ("Your message was delayed", "soft"),
        ("We will retry for 3 more days", "soft"),
        ("Greylisted, please come back", "soft"),
        ("Message could not be delivered", "hard"),
        ("Delivery to the following recipients failed.", "hard"),
        # other languages
        ("Benutzer unbekannt", "hard"),
        ("Empfänger unbekannt", "hard"),
        ("Die Adresse existiert nicht", "hard"),
        ("Das Postfach ist voll", "soft"),
        ("Die Nachricht ist unzustellbar", "hard"),
        ("Zustellung verzögert", "soft"),
        ("Destinataire introuvable", "hard"),
        ("Cette adresse n'existe pas", "hard"),
        ("La boîte aux lettres est pleine", "soft"),
        ("Le message n'a pas pu être remis", "hard"),
        ("Usuario desconocido", "hard"),
        ("Buzón lleno", "soft"),
        ("Utente sconosciuto", "hard"),
        ("Пользователь не найден", "hard"),
        ("Адрес получателя не существует", "hard"),
        ("Почтовый ящик переполнен", "soft"),
        ("Сообщение не доставлено", "hard"),
    ],
)
def test_wording(text: str, kind: str) -> None:
    verdict = classify_text(text, text)
    assert verdict is not None and verdict.kind == kind, verdict
    assert verdict.rule.startswith("text: '") and verdict.rule.endswith(f"({kind})")


@pytest.mark.parametrize(
    ("text", "kind", "rule"),
    [
        ("550 5.1.1 <a@b.example>: user unknown", "hard", "text: status 5.1.1 (hard)"),
        ("Sorry, no mailbox here by that name. (#5.1.1)", "hard", "text: status 5.1.1 (hard)"),
        ("550-5.1.1 The email account does not exist", "hard", "text: status 5.1.1 (hard)"),
        ("#550 5.2.2 STOREDRV.Deliver: mailbox full ##", "soft", "text: status 5.2.2 (soft)"),
        ("Remote host said: 452 Mailbox over quota", "soft", "text: smtp 452 (soft)"),
        ("<<< 550 MAILBOX NOT FOUND", "hard", "text: smtp 550 (hard)"),
        (
            "said: 552 Requested mail action aborted: exceeded storage",
            "soft",
            "text: smtp 552 (soft)",
        ),
        # the status code wins over the words beside it
        ("550 5.1.1 temporarily rejected", "hard", "text: status 5.1.1 (hard)"),
    ],
)
def test_codes_in_text(text: str, kind: str, rule: str) -> None:
    verdict = classify_text(text, text)
    assert verdict is not None and (verdict.kind, verdict.rule) == (kind, rule)


@pytest.mark.parametrize(
    "text",
    [
        "connected to 5.45.198.1 and 4.2.2.1, all well",  # IP addresses
        "running Exim 4.96.2 since 2026",  # versions
        "port 587 was used; 500 recipients got it",
    ],
)
def test_numbers_that_are_not_codes(text: str) -> None:
    assert classify_text(text, text) is None


def test_precedence() -> None:
    # "delayed" and "will not be delivered": the final word wins
    verdict = classify_text("", "Your message was delayed and will not be delivered.")
    assert verdict is not None and verdict.rule == "text: 'will not be delivered' (hard)"
    # a warning that also says "could not be delivered (yet)" is a warning
    warning = "THIS IS A WARNING ONLY. Your message could not be delivered for 4 hours."
    verdict = classify_text("", warning)
    assert verdict is not None and verdict.kind == "soft" and "warning" in verdict.rule
    # a recipient's own reason beats the warning framing of the whole notice
    verdict = classify_text("bob@example.org: user unknown", warning + "\nbob: user unknown")
    assert verdict is not None and verdict.kind == "hard"
    # a recipient's own paragraph beats what the notice says about another
    notice = "ann@example.org: 550 5.1.1 user unknown\nbob@example.org: mailbox full"
    parts = paragraphs(notice, ["ann@example.org", "bob@example.org"])
    assert classify_text(parts["bob@example.org"], notice).kind == "soft"  # type: ignore[union-attr]
    assert classify_text(parts["ann@example.org"], notice).kind == "hard"  # type: ignore[union-attr]
    # the subject only when the text says nothing; its first word counts
    verdict = classify_text("", "See below.", "Undeliverable: Delayed shipping news")
    assert verdict is not None and verdict.rule == "subject: 'undeliver' (hard)"
    # flufl.bounce's verdict on the layout is the last resort
    verdict = classify_text("", "See below.", "Hello", BounceKind.HARD)
    assert verdict is not None and verdict.rule == "flufl.bounce: permanent failure (hard)"
    assert classify_text("", "See below.", "Hello") is None


def test_dsn_fields() -> None:
    def rule(*args: str | None) -> tuple[str, str] | None:
        verdict = classify_dsn(*args)
        return (verdict.kind.value, verdict.rule) if verdict else None

    assert rule("5.1.1", "failed", "452 4.2.2 mailbox full") == ("hard", "dsn-status 5.1.1")
    assert rule("4.4.1", "failed", None) == ("soft", "dsn-status 4.4.1")
    assert rule("5.2.2", "failed", None) == ("soft", "dsn-status 5.2.2 (mailbox full: transient)")
    assert rule("2.0.0", "delivered", None) == ("none", "dsn-action delivered")
    assert rule(None, "failed", "452 4.2.2 mailbox full") == (
        "soft",
        "dsn diagnostic text: status 4.2.2 (soft)",
    )
    assert rule(None, "failed", "x", "ann@example.org: unrouteable address") == (
        "hard",
        "text: 'unrouteable address' (hard)",
    )
    assert rule(None, "failed", None) == ("hard", "dsn-action failed")
    assert rule(None, "delayed", None) == ("soft", "dsn-action delayed")
    assert rule(None, None, None) is None


def _headers(subject: str, sender: str, **values: str) -> Headers:
    return Headers(subject, sender, {k.replace("_", "-").lower(): [v] for k, v in values.items()})


def test_auto_replies_and_notice_shape() -> None:
    person = "Ann <ann@example.org>"
    daemon = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    # Auto-Submitted alone marks an auto-reply from a person ...
    headers = _headers("Re: March", person, Auto_Submitted="auto-replied")
    assert not_a_bounce(headers, notice_shape(headers, "", False)) == (
        "auto-reply header Auto-Submitted: auto-replied"
    )
    # ... but bounces carry it too
    headers = _headers("Mail delivery failed", daemon, Auto_Submitted="auto-replied")
    assert notice_shape(headers, "", False) == "sender"
    assert not_a_bounce(headers, "sender") is None
    # headers no bounce generator writes win even over a daemon sender
    headers = _headers("Mail delivery failed", daemon, X_Autoreply="yes")
    assert not_a_bounce(headers, "sender") == "auto-reply header X-Autoreply: yes"
    headers = _headers("Hello", person, Precedence="auto_reply")
    assert not_a_bounce(headers, None) == "auto-reply header Precedence: auto_reply"
    # a challenge only when nothing says "delivery notice": our own opt-in mail bounces too
    headers = _headers("Please confirm your subscription", person)
    assert not_a_bounce(headers, None) == "challenge-response subject 'please confirm'"
    headers = _headers("Undeliverable: Please confirm your subscription", person)
    assert notice_shape(headers, "", False) == "subject"
    assert not_a_bounce(headers, "subject") is None
    # a person's message is no notice
    headers = _headers("Fwd: news", person)
    assert not_a_bounce(headers, None) == (
        "not a delivery notice (no report part, bounce sender, subject or wording)"
    )
    text = "Hi. This is the qmail-send program at mx.example.net."
    assert notice_shape(_headers("Hello", person), text, False) == "notice wording"


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("rfc822; ann@example.org", "ann@example.org"),
        ("rfc822;<Ann@Example.ORG>", "ann@example.org"),
        ("RFC822; ann@example.org (Ann Example)", "ann@example.org"),
        ('rfc822; "Ann" <ann@example.org>', "ann@example.org"),
        ("utf-8; j\\x{00F6}rg@example.org", "jörg@example.org"),
        ("ann@example.org.", "ann@example.org"),
        ("x400; /C=DE/ADMD=VIAT/PRMD=EXAMPLE/O=CORP/S=Mueller/", None),
        ("/C=DE/ADMD=VIAT/O=CORP/S=Mueller/@gw.example.de", None),
        ("rfc822; IMCEAEX-_o=Org_ou=Exchange_cn=Recipients_cn=ann@corp.example.org", None),
        ("c=US;a= ;p=Corp;o=Exch;s=Ann;", None),
        ("local; ann", None),
        ("rfc822; ann", None),
        ("", None),
    ],
)
def test_clean_address(value: str, address: str | None) -> None:
    assert clean_address(value) == address


def test_addresses_in_text_skip_senders_and_daemons() -> None:
    text = (
        "Your message to ann@example.org from news@example.com failed.\n"
        "Reply to Postmaster@mx.example.net or MAILER-DAEMON@mx.example.net.\n"
        "Return path: bounce+0123456789abcdef0123456789abcdef@bounces.example.com\n"
        "Sender Address:    shop@example.com\nFrom: Shop <deals@example.com>\n"
        "Recipient Address: bob@example.org"
    )
    assert addresses_in(text, ["news@example.com"]) == ["ann@example.org", "bob@example.org"]


def test_notice_text_cuts_the_original() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: failure notice\r\n\r\n"
        b"<ann@example.org>:\r\nmailbox full\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\nuser unknown\r\n"
        b"> quoted user unknown\r\n"
    )
    text = notice_text(email.message_from_bytes(raw))
    assert "mailbox full" in text and "user unknown" not in text
