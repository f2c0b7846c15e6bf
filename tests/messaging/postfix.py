"""A private Postfix instance for tests: Debian's postfix package, run from a configuration
directory written here (never the system's), on loopback ports, without DNS.

Postfix's daemons run as its `mail_owner` (the package creates the user `postfix` and the group
`postdrop`, its `setgid_group`); the master is started by root. So the instance's directory
lives under /tmp (not pytest's 0700 tmp_path, which the postfix user could not enter), its
queue is created by `postfix start` itself, and its data directory belongs to the mail owner.
Mailboxes are virtual(8) Maildirs owned by `nobody`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"

# The daemons this test needs, none chrooted (a chroot would need a copy of /etc inside).
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def unavailable() -> str | None:
    """Why this machine cannot run the instance, or None."""
    if not Path(POSTFIX).exists():
        return "postfix is not installed (apt-get install postfix; .ci/run installs it)"
    if os.geteuid() != 0:
        return "starting Postfix needs root (its master runs as root, its daemons as postfix)"
    owner, group = _defaults("mail_owner", "setgid_group")
    try:
        pwd.getpwnam(owner)
        grp.getgrnam(group)
    except KeyError:
        return f"the postfix package's user {owner!r} or group {group!r} is missing"
    return None


def _defaults(*names: str) -> list[str]:
    """Compiled-in defaults (postconf -d reads no configuration)."""
    out = subprocess.run(
        [POSTCONF, "-d", "-h", *names], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


@dataclass
class Postfix:
    directory: Path
    port: int  # the smtpd port Tidings sends to
    mailboxes: Path

    @classmethod
    def start(
        cls,
        *,
        port: int,
        local_domain: str,
        mailboxes: list[str],
        relay: Mapping[str, int],
    ) -> Postfix:
        """An instance accepting mail from loopback on `port`: `mailboxes` at `local_domain`
        are delivered to Maildirs, other addresses there bounce (after being accepted, so the
        sender gets a DSN, as from a relay); mail for each `relay` domain goes to that port
        on loopback (where `tidings inbound` listens)."""
        owner, group = _defaults("mail_owner", "setgid_group")
        nobody = pwd.getpwnam("nobody")
        directory = Path(tempfile.mkdtemp(prefix="tidings-postfix-"))
        directory.chmod(0o755)
        (directory / "queue").mkdir(mode=0o755)
        (directory / "data").mkdir(mode=0o700)
        os.chown(directory / "data", pwd.getpwnam(owner).pw_uid, -1)
        base = directory / "mail"
        base.mkdir(mode=0o755)
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        boxes = ", ".join(f"{name}@{local_domain}={name}/" for name in mailboxes)
        routes = ", ".join(f"{domain}=smtp:[127.0.0.1]:{p}" for domain, p in relay.items())
        (directory / "main.cf").write_text(
            f"""\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
mail_owner = {owner}
setgid_group = {group}
myhostname = mta.tidings.test
mydomain = tidings.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains = {", ".join(relay)}
transport_maps = inline:{{ {routes} }}
virtual_mailbox_domains = {local_domain}
virtual_mailbox_base = {base}
virtual_mailbox_maps = inline:{{ {boxes} }}
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
smtpd_reject_unlisted_recipient = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {directory}/maillog
maillog_file_prefixes = {directory}
"""
        )
        (directory / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
        instance = cls(directory, port, base)
        started = subprocess.run(
            [POSTFIX, "-c", str(directory), "start"], capture_output=True, text=True
        )
        if started.returncode != 0 or not instance._listening(deadline=10):
            log = instance.log()
            instance.stop()
            raise RuntimeError(f"postfix did not start: {started.stderr}\n{log}")
        return instance

    def _listening(self, deadline: float) -> bool:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def delivered(self, mailbox: str) -> list[bytes]:
        new = self.mailboxes / mailbox / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def stop(self) -> None:
        pid_file = self.directory / "queue" / "pid" / "master.pid"
        pid = int(pid_file.read_text().strip() or 0) if pid_file.exists() else 0
        subprocess.run([POSTFIX, "-c", str(self.directory), "abort"], capture_output=True)
        end = time.monotonic() + 10
        while pid and time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(self.directory, ignore_errors=True)
