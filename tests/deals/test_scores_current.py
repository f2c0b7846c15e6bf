"""Deal scores kept current by the worker's score pass: contact behaviour arriving as
activities, points that expire, and relative windows that lapse with time alone (fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deals.helpers import Crm, ok
from tests.deals.test_scoring import BIG, OPENED, rule, score, score_changes
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.deals import scorekeeper
from tidings.deals.scorekeeper import keep_scores_current, reads_relative_time


def passes(database: Database, clock: FakeClock) -> int:
    """Run score passes until none is left; how many ran."""
    count = 1
    while keep_scores_current(database, clock, batch=3):
        count += 1
    return count


def opened(crm: Crm, clock: FakeClock, contact_id: int) -> None:
    event: dict[str, Any] = {
        "type": "email_opened",
        "contact_id": contact_id,
        "occurred_at": clock.now().isoformat(),
    }
    ok(crm.client.post("/api/v1/events", json=event), 201)


def test_contact_behaviour_rescores_the_deals_of_that_contact(
    crm: Crm, database: Database, clock: FakeClock
) -> None:
    hers = crm.deal(contact_id=crm.contacts[0])["id"]
    his = crm.deal(contact_id=crm.contacts[1])["id"]
    rule(crm, OPENED, 5)
    passes(database, clock)  # the cursor starts at the newest activity
    assert (score(crm, hers), score(crm, his)) == (0, 0)
    opened(crm, clock, crm.contacts[0])
    assert score(crm, hers) == 0  # not yet: the pass has not run
    # many other activities in between: the pass works through them in batches
    for n in range(5):
        ok(crm.client.put(f"/api/v1/contacts/{crm.contacts[2]}/tags/t{n}"))
    assert passes(database, clock) > 1
    assert (score(crm, hers), score(crm, his)) == (5, 0)
    assert score_changes(crm, hers) == [{"old": 0, "new": 5}]
    # a pass with nothing new changes nothing
    passes(database, clock)
    assert score_changes(crm, hers) == [{"old": 0, "new": 5}]


def test_a_window_lapses_with_time_alone(crm: Crm, database: Database, clock: FakeClock) -> None:
    hers = crm.deal(contact_id=crm.contacts[0])["id"]
    opened(crm, clock, crm.contacts[0])
    rule(crm, OPENED, 5)
    assert score(crm, hers) == 5
    passes(database, clock)
    clock.advance(days=6)
    passes(database, clock)
    assert score(crm, hers) == 5
    clock.advance(days=2)  # the open is 8 days old: "opened in the last 7 days" no longer holds
    passes(database, clock)
    assert score(crm, hers) == 0
    assert score_changes(crm, hers)[0] == {"old": 5, "new": 0}


def test_points_drop_when_they_expire(crm: Crm, database: Database, clock: FakeClock) -> None:
    big = crm.deal(value=2_000_000)["id"]
    rule(crm, BIG, 10, expires_after_days=30)
    passes(database, clock)
    clock.advance(days=29)
    passes(database, clock)
    assert score(crm, big) == 10
    clock.advance(days=1, minutes=1)
    passes(database, clock)
    assert score(crm, big) == 0
    assert score_changes(crm, big) == [{"old": 10, "new": 0}, {"old": 0, "new": 10}]


def test_relative_windows_are_found_anywhere_in_a_condition() -> None:
    assert reads_relative_time({"and": [BIG, {"not": OPENED}]})
    assert not reads_relative_time({"and": [BIG, {"tag": "vip"}]})


def test_a_window_sweep_goes_a_chunk_of_deals_per_pass(
    crm: Crm, database: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scorekeeper, "WINDOW_CHUNK", 2)
    deals = [crm.deal(contact_id=crm.contacts[i % 3])["id"] for i in range(5)]
    opened(crm, clock, crm.contacts[0])
    rule(crm, OPENED, 5)
    assert [score(crm, d) for d in deals] == [5, 0, 0, 5, 0]
    passes(database, clock)
    clock.advance(days=8)
    # the sweep: 5 deals, 2 per pass, then the pass that finds none left
    assert keep_scores_current(database, clock)
    assert [score(crm, d) for d in deals] == [0, 0, 0, 5, 0]  # deals 1 and 2 done, 4 not yet
    assert passes(database, clock) == 3
    assert [score(crm, d) for d in deals] == [0, 0, 0, 0, 0]
