"""The time buckets of a broadcast's report: hours while everything happened within 48 hours,
else days from midnight UTC (weeks past 90 days); every count lands in one bucket."""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.messaging.broadcast_report import SERIES, _timeline

START = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # queued at 22:xx


def _hours(**counts: dict[int, int]) -> dict[str, dict[int, int]]:
    return {name: counts.get(name, {}) for name in SERIES}


def test_hours_within_48_hours() -> None:
    timeline = _timeline(_hours(delivered={0: 5, 1: 2}, opened={47: 1}), START)
    assert timeline.bucket == "hour" and len(timeline.starts) == 48
    assert timeline.starts[1] == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert timeline.series["delivered"][:2] == [5, 2] and timeline.series["opened"][47] == 1


def test_days_from_midnight_past_48_hours() -> None:
    # Hour 1 is 23:00 on the first day, hour 2 midnight of the second, hour 49 23:00 on the third.
    timeline = _timeline(_hours(delivered={0: 5, 1: 2}, opened={2: 1, 49: 3}), START)
    assert timeline.bucket == "day"
    assert timeline.starts == [datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4)]
    assert timeline.series["delivered"] == [7, 0, 0]
    assert timeline.series["opened"] == [0, 1, 3]


def test_weeks_past_90_days_and_nothing_before_queueing() -> None:
    timeline = _timeline(_hours(clicked={0: 1, 24 * 100: 2}), START)
    assert timeline.bucket == "week" and len(timeline.starts) == 15
    assert sum(timeline.series["clicked"]) == 3
    empty = _timeline(_hours(), None)
    assert empty.starts == [] and empty.series["opened"] == []
