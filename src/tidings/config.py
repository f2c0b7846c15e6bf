"""Settings, read from TIDINGS_* environment variables (or a .env file)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./tidings.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # Signs tracking tokens, confirmation and unsubscribe links. When unset, a random key is
    # generated once and kept in `secret_file`, so links stay valid across restarts.
    secret_key: str | None = None
    secret_file: Path = Path("./tidings.secret")
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    # Webhook actions refuse private and loopback addresses unless this is true.
    webhook_allow_private: bool = False
    # Raw events older than this many days may be pruned (None keeps them forever).
    event_retention_days: int | None = Field(default=None, gt=0)
    smtp_url: str | None = None

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.secret_file
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
