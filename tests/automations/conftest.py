from __future__ import annotations

import pytest

from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.db.engine import Database


@pytest.fixture
def engine(database: Database, clock: FakeClock) -> Engine:
    return Engine(database, clock, batch_size=200)
