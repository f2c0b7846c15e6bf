"""`serve --dev-smtp`: the sink, the in-process sender thread and /dev/mailbox; DKIM CLI."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from tests.messaging.conftest import free_port
from tests.messaging.helpers import make_contact, make_template
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.messaging import queue_email
from tidings.messaging.devmail import DevMailbox, start_email_services
from tidings.messaging.dkim import DkimSigner, txt_strings


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
    """The record is printed as DNS character-strings of at most 255 octets (a zone file and
    BIND take it as it is); read back and joined, it verifies what the key signs."""
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
    rdata = line.removeprefix("mail._domainkey.example.com. IN TXT ")
    strings = re.findall(r'"([^"\\]*)"', rdata)
    assert " ".join(f'"{s}"' for s in strings) == rdata  # nothing but quoted strings
    assert len(strings) == 2 and all(len(s.encode()) <= 255 for s in strings)  # 2048 bits
    record = "".join(strings).encode()
    signer = DkimSigner.from_pem("example.com", "mail", key.read_bytes())
    assert record.decode() == signer.dns_record()
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


def test_txt_strings_are_cut_at_255_octets() -> None:
    assert txt_strings("x" * 600) == ["x" * 255, "x" * 255, "x" * 90]
    assert txt_strings("v=DKIM1") == ["v=DKIM1"]


def test_the_docs_example_record_is_valid_zone_text() -> None:
    docs = Path(__file__).parents[2] / "docs" / "email.md"
    [line] = [x for x in docs.read_text().splitlines() if x.startswith("tidings._domainkey.")]
    rdata = line.removeprefix("tidings._domainkey.example.com. IN TXT ")
    strings = re.findall(r'"([^"\\]*)"', rdata)
    assert " ".join(f'"{s}"' for s in strings) == rdata
    assert all(len(s.encode()) <= 255 for s in strings)
    record = "".join(strings)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    key = serialization.load_der_public_key(base64.b64decode(record.split("p=")[1]))
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
