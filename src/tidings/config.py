"""Settings, read from TIDINGS_* environment variables (or a .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./tidings.db"


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
    # Webhook actions refuse private and loopback addresses unless this is true.
    webhook_allow_private: bool = False
    # Opens and page visits are written in batches this often: a process killed outright
    # (kill -9) loses at most this window of them. Clicks are written before their redirect.
    tracking_flush_seconds: float = Field(default=0.2, gt=0, le=60)
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
