"""Limits per destination: how many connections carry the mail for a recipient domain, and how
many messages each carries before it is closed and opened again.

Tidings hands its mail to one relay (TIDINGS_SMTP_URL), but the receivers behind it differ:
some accept a few connections from one sender and so many messages on each, and a relay that
forwards at once inherits those limits. TIDINGS_SMTP_DESTINATIONS gives a domain (or several
sharing their mail servers, comma-separated) a pool of connections of its own, e.g.

    {"gmail.com,googlemail.com": {"connections": 8, "messages_per_connection": 100},
     "outlook.com,hotmail.com": {"connections": 2, "messages_per_connection": 20}}

A domain's entry covers its subdomains too. Every other domain shares the default pool:
TIDINGS_SMTP_CONNECTIONS connections of TIDINGS_SMTP_MESSAGES_PER_CONNECTION messages each,
which a "*" entry may override. Each pool opens its connections only when it has mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tidings.config import DEFAULT_DESTINATION, DestinationLimits, destination_domains


@dataclass(frozen=True, slots=True)
class Destination:
    name: str  # "*" or the entry's key, e.g. "gmail.com,googlemail.com"
    connections: int
    messages_per_connection: int  # 0: no limit


class Routes:
    """Which destination a recipient's mail goes through."""

    def __init__(self, default: Destination, named: Iterable[Destination] = ()) -> None:
        self.default = default
        self.by_domain: dict[str, Destination] = {}
        for destination in named:
            for domain in destination_domains(destination.name):
                self.by_domain[domain] = destination

    @property
    def destinations(self) -> list[Destination]:
        return [self.default, *dict.fromkeys(self.by_domain.values())]

    def of(self, email: str) -> Destination:
        if not self.by_domain:
            return self.default
        domain = email.rpartition("@")[2].lower().rstrip(".")
        while domain:
            found = self.by_domain.get(domain)
            if found is not None:
                return found
            domain = domain.partition(".")[2]  # the parent domain
        return self.default


def named_destinations(
    entries: Mapping[str, DestinationLimits], messages_per_connection: int
) -> tuple[Destination, ...]:
    """The entries other than "*", with the default messages per connection filled in."""
    return tuple(
        Destination(
            ",".join(destination_domains(key)),
            limits.connections,
            messages_per_connection
            if limits.messages_per_connection is None
            else limits.messages_per_connection,
        )
        for key, limits in entries.items()
        if destination_domains(key) != [DEFAULT_DESTINATION]
    )
