"""Settings, read from TIDINGS_* environment variables (or a .env file)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./tidings.db"
# A domain name (letters, digits, hyphens, dots) or an address literal such as [192.0.2.1].
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HELO_PATTERN = rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])$"


DEFAULT_DESTINATION = "*"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class DestinationLimits(BaseModel):
    """One entry of TIDINGS_SMTP_DESTINATIONS (tidings.messaging.destinations)."""

    model_config = ConfigDict(extra="forbid")

    connections: int = Field(ge=1, le=64)
    # None: TIDINGS_SMTP_MESSAGES_PER_CONNECTION; 0: no limit.
    messages_per_connection: int | None = Field(default=None, ge=0)


def destination_domains(key: str) -> list[str]:
    """The domains of a TIDINGS_SMTP_DESTINATIONS key ("a.com,b.com" or "*"), lower case;
    ValueError names a bad one."""
    domains = [d.strip().lower().rstrip(".") for d in key.split(",")]
    for domain in domains:
        if domain != DEFAULT_DESTINATION and not _DOMAIN.fullmatch(domain):
            raise ValueError(f"{domain!r} is not a domain name")
    if DEFAULT_DESTINATION in domains and len(domains) > 1:
        raise ValueError("'*' stands alone")
    return domains


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # Signs tracking tokens, confirmation and unsubscribe links. When unset (the default), the
    # keys live in the database, shared by every process (tidings.auth.signing).
    secret_key: str | None = None
    # Where versions before the database kept the key: `db upgrade` carries it over once.
    secret_file: Path = Path("./tidings.secret")
    # Where links in mail point. Unset, it follows host and port (see default_base_url).
    base_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # addresses or networks, "*" for any): tracking sees the visitor's address, not the proxy's.
    forwarded_allow_ips: str = "127.0.0.1"
    # The web admin: a session ends after this many hours without a request.
    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Webhook actions refuse private and loopback addresses unless this is true.
    webhook_allow_private: bool = False
    # Opens and page visits are written in batches this often: a process killed outright
    # (kill -9) loses at most this window of them. Clicks are written before their redirect.
    tracking_flush_seconds: float = Field(default=0.2, gt=0, le=60)
    # An open or click this soon after its message was made is a machine's (security gateways
    # and privacy proxies fetch on delivery); 0 judges by the other signs alone.
    tracking_machine_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Raw events older than this many days may be pruned (None keeps them forever).
    event_retention_days: int | None = Field(default=None, gt=0)
    smtp_url: str | None = None
    # Email (issue 5, tidings.messaging). The From header of every message.
    mail_from: str = "Tidings <noreply@localhost>"
    # VERP return path bounce+<token>@bounce_domain; None: the From address is the return path.
    bounce_domain: str | None = None
    # An address that unsubscribes by mail (List-Unsubscribe mailto); None leaves it out.
    unsubscribe_mailto: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None  # default: the domain of mail_from
    dkim_private_key: str | None = None  # PEM text, or ...
    dkim_private_key_file: Path | None = None  # ... a file holding it
    smtp_connections: int = Field(default=4, ge=1, le=64)
    # The name said in EHLO; default: the machine's FQDN, or the From domain when the host
    # name is not fully qualified (tidings.messaging.options.default_helo).
    smtp_helo: str | None = Field(default=None, pattern=HELO_PATTERN)
    # Reconnect after this many messages on one connection (0: never; Exim's default limit is
    # 1000 per connection).
    smtp_messages_per_connection: int = Field(default=1000, ge=0)
    # Connections and messages per connection of chosen recipient domains, as JSON:
    # {"gmail.com,googlemail.com": {"connections": 8, "messages_per_connection": 100}}.
    smtp_destinations: dict[str, DestinationLimits] = Field(default_factory=dict)
    smtp_rate_per_second: float | None = Field(default=None, gt=0)
    smtp_domain_rate_per_second: float | None = Field(default=None, gt=0)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_max_attempts: int = Field(default=8, ge=1)
    smtp_retry_base_seconds: float = Field(default=60.0, gt=0)
    # Render and DKIM-sign in this many worker processes (0: threads; use >0 with spare cores).
    smtp_compose_processes: int = Field(default=0, ge=0, le=32)
    # N soft bounces within M days make a contact bounced.
    soft_bounce_limit: int = Field(default=3, ge=1)
    soft_bounce_days: int = Field(default=7, ge=1)
    opt_in_expiry_hours: int = Field(default=72, ge=1)
    # A template's output (all parts of one message) and the time one render may take: more is
    # refused when the template is saved or previewed, and fails the message when it is sent.
    template_max_bytes: int = Field(default=2_000_000, ge=1_000)
    template_max_seconds: float = Field(default=2.0, gt=0)
    # Jobs (issue 16, tidings.jobs). Export files are written here and deleted after the
    # retention period (None keeps them); the worker imports each new CSV of the drop folder
    # (None: no drop folder) every `import_poll_seconds`.
    export_dir: Path = Path("./exports")
    export_retention_days: int | None = Field(default=30, gt=0)
    import_dir: Path | None = None
    import_poll_seconds: float = Field(default=30.0, gt=0)
    # A running job renews its lease at every checkpoint; a run whose lease ran out (or whose
    # process on this host is gone) is resumed by the next worker.
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # Contacts per transaction of a hygiene deletion and rows per batch of a drop-folder import.
    job_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    # An API request whose database work runs longer is stopped with a 503 naming this budget
    # (a huge segment preview must not hold a connection, or on PostgreSQL a backend, for minutes).
    request_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("smtp_destinations")
    @classmethod
    def _each_domain_once(cls, value: dict[str, DestinationLimits]) -> dict[str, DestinationLimits]:
        seen: set[str] = set()
        for key in value:
            for domain in destination_domains(key):
                if domain in seen:
                    raise ValueError(f"{domain!r} is named twice")
                seen.add(domain)
        return value

    @model_validator(mode="after")
    def _base_url_follows_host_and_port(self) -> Settings:
        if not self.base_url:
            # Not through assignment: `base_url` stays out of model_fields_set, so
            # `tidings serve --host/--port` can tell it was not given.
            self.__dict__["base_url"] = default_base_url(self.host, self.port)
        return self


def default_base_url(host: str, port: int) -> str:
    """The URL a server bound to host:port answers at; a wildcard address is this machine."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
