"""Schedule ticks: the latest tick at or before a moment, for a cron line read in its time zone
(croniter walks local wall-clock time, so `0 6 * * *` stays at 06:00 across DST) or for
`every: N` minutes (counted from the Unix epoch, so every worker agrees)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]

from tidings.automations.definition.system_steps import ScheduleTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def latest_tick(trigger: ScheduleTrigger, now: datetime) -> datetime:
    """The last tick at or before `now` (UTC)."""
    if trigger.every is not None:
        step = timedelta(minutes=trigger.every)
        return EPOCH + ((now - EPOCH) // step) * step
    assert trigger.cron is not None
    local = now.astimezone(ZoneInfo(trigger.timezone)) + timedelta(seconds=1)
    previous: datetime = croniter(trigger.cron, local).get_prev(datetime)
    return previous.astimezone(UTC)


def next_tick(trigger: ScheduleTrigger, now: datetime) -> datetime:
    """The first tick after `now` (UTC)."""
    if trigger.every is not None:
        return latest_tick(trigger, now) + timedelta(minutes=trigger.every)
    assert trigger.cron is not None
    following: datetime = croniter(
        trigger.cron, now.astimezone(ZoneInfo(trigger.timezone))
    ).get_next(datetime)
    return following.astimezone(UTC)
