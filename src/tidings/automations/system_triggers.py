"""The triggers of system automations (`kind: system`): a schedule, or a job, broadcast,
import or export finishing. They are part of the one trigger union (tidings.automations.
triggers), registered with no activity types: the contact engine starts nothing with them;
tidings.system does."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SYSTEM_TRIGGERS = (
    "schedule",
    "job_finished",
    "broadcast_finished",
    "import_finished",
    "export_finished",
)


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleTrigger(_Trigger):
    """A cron line in a time zone (local wall-clock times, DST handled by croniter), or
    `every: N` minutes; `catch_up: once` runs a tick missed while no worker ran once at
    start-up, `skip` records it as skipped."""

    type: Literal["schedule"]
    cron: str | None = None
    timezone: str = "UTC"
    every: int | None = Field(default=None, ge=1, le=525_600, description="minutes")
    catch_up: Literal["once", "skip"] = "once"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a cron line (minute hour day month weekday): {value!r}")
        return value

    @model_validator(mode="after")
    def _one(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of: cron, every")
        return self


class JobFinishedTrigger(_Trigger):
    """A job run finished: of a kind, started by a named automation, with a status (default
    succeeded: an automation chained on another is skipped when the first fails)."""

    type: Literal["job_finished"]
    job: str | None = Field(default=None, description="job kind: send, export, import, ...")
    automation: str | None = Field(default=None, description="the automation that ran the job")
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class BroadcastFinishedTrigger(_Trigger):
    type: Literal["broadcast_finished"]
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class ImportFinishedTrigger(_Trigger):
    """A contact import finished; `min_percent`: only when at least that share of the rows read
    was imported."""

    type: Literal["import_finished"]
    min_percent: float = Field(default=0, ge=0, le=100)
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class ExportFinishedTrigger(_Trigger):
    type: Literal["export_finished"]
    status: Literal["succeeded", "failed", "any"] = "succeeded"


SystemTrigger = (
    ScheduleTrigger
    | JobFinishedTrigger
    | BroadcastFinishedTrigger
    | ImportFinishedTrigger
    | ExportFinishedTrigger
)
