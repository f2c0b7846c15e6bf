"""Storage: engine, sessions, base model, portable types and migrations."""

from tidings.db.base import Base
from tidings.db.engine import Database, create_database, normalize_url

__all__ = ["Base", "Database", "create_database", "normalize_url"]
