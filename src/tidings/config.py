"""Settings, read from TIDINGS_* environment variables (or a .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    base_url: str = "http://127.0.0.1:8000"
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
