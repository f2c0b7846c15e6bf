"""Bounce and complaint messages in the shapes real servers send, written for these tests
(RFC 3464 / RFC 5965 examples, and the layouts of Postfix, Exim, Exchange, Gmail and Yahoo).
`TOKEN` is replaced by the outbox message's token and `RCPT` by the recipient."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "bounce_corpus"

POSTFIX_HARD = """\
Return-Path: <>
Received: by mx.example.net (Postfix) id 3F2A1C0F1; Mon,  2 Mar 2026 09:01:02 +0000 (UTC)
Date: Mon,  2 Mar 2026 09:01:02 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounce+TOKEN@bounces.example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="3F2A1C0F1.1709370062/mx.example.net"
Message-Id: <20260302090102.3F2A1C0F1@mx.example.net>

This is a MIME-encapsulated message.

--3F2A1C0F1.1709370062/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<RCPT>: host mail.example.org[203.0.113.5] said: 550 5.1.1
    <RCPT>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--3F2A1C0F1.1709370062/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 3F2A1C0F1
X-Postfix-Sender: rfc822; bounce+TOKEN@bounces.example.com
Arrival-Date: Mon,  2 Mar 2026 09:01:01 +0000 (UTC)

Final-Recipient: rfc822; RCPT
Original-Recipient: rfc822;RCPT
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; 550 5.1.1 <RCPT>: Recipient address rejected: User
    unknown in virtual mailbox table

--3F2A1C0F1.1709370062/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <bounce+TOKEN@bounces.example.com>
From: Shop <news@example.com>
To: RCPT
Subject: Hello
Message-ID: <TOKEN@example.com>

--3F2A1C0F1.1709370062/mx.example.net--
"""

POSTFIX_DELAYED = """\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: bounce+TOKEN@bounces.example.com
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; RCPT
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mail.example.org[203.0.113.5]:25: Connection timed out
Will-Retry-Until: Fri, 6 Mar 2026 09:01:02 +0000 (UTC)

--B0UND--
"""

EXIM_HARD = """\
Return-path: <>
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: bounce+TOKEN@bounces.example.com
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1oXyZa-0001Ab-Cd@mx.example.net>
X-Failed-Recipients: RCPT
Auto-Submitted: auto-replied
Date: Mon, 02 Mar 2026 09:01:02 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  RCPT
    host mail.example.org [203.0.113.5]
    SMTP error from remote mail server after RCPT TO:<RCPT>:
    550 5.1.1 The email account that you tried to reach does not exist

------ This is a copy of the message, including all the headers. ------

Return-path: <bounce+TOKEN@bounces.example.com>
From: Shop <news@example.com>
To: RCPT
Subject: Hello
Message-ID: <TOKEN@example.com>

Hi there
"""

EXCHANGE_HARD = """\
From: postmaster@outlook.example
To: bounce+TOKEN@bounces.example.com
Date: Mon, 2 Mar 2026 09:01:02 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="b1_exchange"
Subject: Undeliverable: Hello
Auto-Submitted: auto-replied

--b1_exchange
Content-Type: multipart/alternative; boundary="b2_exchange"

--b2_exchange
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:

RCPT
The email address you entered couldn't be found. Please check the recipient's
email address and try to resend the message.

Diagnostic information for administrators:

Generating server: AM0PR01MB1234.eurprd01.prod.outlook.example
RCPT
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

--b2_exchange
Content-Type: text/html; charset="us-ascii"

<html><body><p>Delivery has failed to these recipients or groups:</p></body></html>

--b2_exchange--

--b1_exchange
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.outlook.example
Received-From-MTA: dns;mail.example.com
Arrival-Date: Mon, 2 Mar 2026 09:01:01 +0000

Final-Recipient: rfc822;RCPT
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--b1_exchange
Content-Type: message/rfc822

From: Shop <news@example.com>
To: RCPT
Subject: Hello
Message-ID: <TOKEN@example.com>
MIME-Version: 1.0
Content-Type: text/plain

Hi there

--b1_exchange--
"""

GMAIL_HARD = """\
Delivered-To: bounce+TOKEN@bounces.example.com
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: bounce+TOKEN@bounces.example.com
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000gmail"; report-type=delivery-status

--000000000000gmail
Content-Type: multipart/related; boundary="000000000000rel"

--000000000000rel
Content-Type: multipart/alternative; boundary="000000000000alt"

--000000000000alt
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to RCPT because the address couldn't be found,
or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.

--000000000000alt--
--000000000000rel--
--000000000000gmail
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Mon, 02 Mar 2026 01:01:02 -0800 (PST)
X-Original-Message-ID: <TOKEN@example.com>

Final-Recipient: rfc822; RCPT
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (142.250.0.26, the server for the
 domain gmail.com.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does
 not exist. Please try 550-5.1.1 double-checking the recipient's email address
 for typos or 550 5.1.1 unnecessary spaces.
Last-Attempt-Date: Mon, 02 Mar 2026 01:01:03 -0800 (PST)

--000000000000gmail
Content-Type: message/rfc822

From: Shop <news@example.com>
To: RCPT
Subject: Hello
Message-ID: <TOKEN@example.com>

Hi there
--000000000000gmail--
"""

YAHOO_SOFT = """\
From: MAILER-DAEMON@yahoo.example
To: bounce+TOKEN@bounces.example.com
Subject: Failure Notice
Date: Mon, 2 Mar 2026 09:01:02 +0000

Sorry, we were unable to deliver your message to the following address.

<RCPT>:
Remote host said: 452 4.2.2 Mailbox over quota [RCPT_TO]

--- Below this line is a copy of the message.

Return-Path: <bounce+TOKEN@bounces.example.com>
From: Shop <news@example.com>
To: RCPT
Message-ID: <TOKEN@example.com>
Subject: Hello
"""

MULTI_RECIPIENT = """\
From: MAILER-DAEMON@mx.example.net
To: news@example.com
Subject: Delivery Status Notification
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="MULTI"

--MULTI
Content-Type: text/plain

Some recipients could not be reached.

--MULTI
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

Final-Recipient: rfc822; full@example.org
Action: delayed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 mailbox full

Final-Recipient: rfc822; fine@example.org
Action: delivered
Status: 2.0.0

--MULTI--
"""

ARF_COMPLAINT = """\
From: <staff@hotmail.example>
Date: Mon, 2 Mar 2026 09:30:00 +0000
Subject: complaint about message from 192.0.2.1
To: <abuse@example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Mon, 2 Mar 2026 09:00:00 +0000.
For more information about this format please see
http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <bounce+TOKEN@bounces.example.com>
Original-Rcpt-To: <RCPT>
Arrival-Date: Mon, 2 Mar 2026 09:00:00 +0000
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <news@example.com>
Received: from mailserver.example.net (mailserver.example.net
\t[192.0.2.1]) by example.com with ESMTP id M63d4137594e46;
\tMon, 2 Mar 2026 09:00:00 +0000
To: <RCPT>
Subject: Hello
Message-ID: <TOKEN@example.com>
Date: Mon, 2 Mar 2026 08:59:00 +0000

Hi there
--part1_13d.2e68ed54_boundary--
"""

ARF_MALFORMED = """\
From: <staff@hotmail.example>
To: <abuse@example.com>
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="X"

--X
Content-Type: text/plain

This report has no feedback-report part.
--X--
"""

NOT_A_BOUNCE = """\
From: friend@example.org
To: news@example.com
Subject: Re: Hello

Thanks for the newsletter!
"""


def fill(template: str, token: str, rcpt: str) -> bytes:
    return template.replace("TOKEN", token).replace("RCPT", rcpt).replace("\n", "\r\n").encode()


@dataclass(frozen=True)
class CorpusMessage:
    """One file of bounce_corpus/: the message and what it should be read as (README.md)."""

    name: str
    raw: bytes
    kind: str
    recipients: dict[str, str] | None  # None: any recipients, none of them hard or soft
    rule: str
    token: str | None


def corpus() -> list[CorpusMessage]:
    out: list[CorpusMessage] = []
    for path in sorted(CORPUS.glob("*.eml")):
        lines = path.read_bytes().split(b"\n")
        expect: dict[str, str] = {}
        while lines and lines[0].startswith(b"X-Corpus-"):
            name, _, value = lines.pop(0).decode().partition(":")
            expect[name.removeprefix("X-Corpus-").lower()] = value.strip()
        recipients = None
        if "expect-recipients" in expect:
            pairs = [p.strip() for p in expect["expect-recipients"].split(",") if p.strip()]
            recipients = dict(p.split("=", 1) for p in pairs)
        out.append(
            CorpusMessage(
                name=path.stem,
                raw=b"\r\n".join(lines),
                kind=expect["expect-kind"],
                recipients=recipients,
                rule=expect["expect-rule"],
                token=expect.get("expect-token"),
            )
        )
    return out
