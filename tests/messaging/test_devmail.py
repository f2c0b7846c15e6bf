"""`serve --dev-smtp`: the sink, the in-process sender thread and /dev/mailbox; DKIM CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dkim
from fastapi.testclient import TestClient

from tests.messaging.conftest import free_port
from tests.messaging.helpers import make_contact, make_template
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.devmail import DevMailbox, start_email_services


def test_dev_smtp_catches_mail_and_shows_it(
    client: TestClient, database: Database, clock: FakeClock, settings: Settings
) -> None:
    assert client.get("/dev/mailbox").status_code == 404  # only with --dev-smtp
    with database.session() as session:
        make_template(session, clock.now())
        contact = make_contact(session, "ann@example.org", clock.now(), first_name="Ann")
        queue_email(
            session,
            contact_id=contact.id,
            template="welcome",
            message_class="transactional",
            idempotency_key="dev-1",
            now=clock.now(),
        )
    services = start_email_services(
        client.app, settings, database, clock, dev_smtp=True, dev_smtp_port=free_port()
    )
    try:
        mailbox: DevMailbox = client.app.state.dev_mailbox  # type: ignore[attr-defined]
        assert mailbox.arrived.wait(timeout=20)
    finally:
        services.stop()
    page = client.get("/dev/mailbox")
    assert page.status_code == 200 and "ann@example.org" in page.text and "Hello Ann" in page.text
    one = client.get("/dev/mailbox/1")
    assert one.status_code == 200 and "Hello Ann" in one.text
    raw = client.get("/dev/mailbox/1?raw=1")
    assert raw.text.startswith("From:") or "Message-ID" in raw.text
    assert client.get("/dev/mailbox/99").status_code == 404


def test_dkim_generate_prints_a_record_that_verifies(tmp_path: Path) -> None:
    executable = Path(sys.executable).parent / "tidings"
    key = tmp_path / "k.pem"
    out = subprocess.run(
        [
            str(executable),
            "dkim",
            "generate",
            "example.com",
            "--selector",
            "mail",
            "--bits",
            "1024",
            "--key-file",
            str(key),
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    line = out.stdout.strip()
    assert line.startswith('mail._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=')
    assert oct(key.stat().st_mode)[-3:] == "600"
    record = line.split('"')[1].encode()
    from tidings.messaging.dkim import DkimSigner

    signer = DkimSigner.from_pem("example.com", "mail", key.read_bytes())
    message = signer.sign(
        b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhi\r\n", timestamp=1
    )
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
    again = subprocess.run(
        [str(executable), "dkim", "generate", "example.com", "--key-file", str(key)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "exists" in again.stderr
