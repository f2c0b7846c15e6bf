"""Fixtures of the system-automation tests: settings with an export folder of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.config import Settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        secret_file=tmp_path / "tidings.secret",
        base_url="http://testserver",
        export_dir=tmp_path / "exports",
        import_dir=tmp_path / "drop",
    )
