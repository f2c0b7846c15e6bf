"""Deal triggers: a deal's changes start automations for its contacts.

Every change of a deal writes an activity with the deal's id (tidings.deals.timeline); these
triggers match those activities. A run a deal trigger starts knows its deal ("the triggered
deal": deal actions and conditions act on it), and `runs: once` means once per (contact,
deal). `contacts: primary` (default) starts the deal's primary contact, `all` every contact of
the deal.

Pipelines, stages and users are named by id or by name (a pipeline's name, a stage's title, a
user's email); names are looked up once per matching round (`DealNames`), so a renamed stage
matches by its new title from the next round on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.deals.models import Pipeline, Stage, User

Ref = int | str  # an id, or a name (pipeline name, stage title, user email)
DealStatusName = Literal["open", "won", "lost"]


class DealTriggerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    contacts: Literal["primary", "all"] = Field(
        default="primary", description="start the deal's primary contact, or all its contacts"
    )


def _ref() -> Any:
    return Field(default=None, union_mode="left_to_right")


class DealEnteredPipelineTrigger(DealTriggerModel):
    """A deal is created in the pipeline, or moved into it from another one."""

    type: Literal["deal_entered_pipeline"]
    pipeline: Ref | None = _ref()


class DealStageTrigger(DealTriggerModel):
    """A deal's stage really changes (pipeline, from and to each optional)."""

    type: Literal["deal_stage_changed"]
    pipeline: Ref | None = _ref()
    from_: Ref | None = Field(default=None, alias="from", union_mode="left_to_right")
    to: Ref | None = _ref()


class DealStatusTrigger(DealTriggerModel):
    type: Literal["deal_status_changed"]
    to: DealStatusName | None = None
    from_: DealStatusName | None = Field(default=None, alias="from")


class DealValueTrigger(DealTriggerModel):
    type: Literal["deal_value_changed"]
    direction: Literal["up", "down"] | None = None


class DealOwnerTrigger(DealTriggerModel):
    type: Literal["deal_owner_changed"]
    to: Ref | None = _ref()


class DealFieldTrigger(DealTriggerModel):
    """title, description, currency, expected_close, lost_reason or a custom deal field."""

    type: Literal["deal_field_changed"]
    field: str = Field(min_length=1, max_length=64)
    to: Any = Field(default=None, description="only when the new value equals this")


class DealScoreTrigger(DealTriggerModel):
    """The deal's score crosses `threshold` in `direction` (not for scores already past)."""

    type: Literal["deal_score_threshold"]
    threshold: int
    direction: Literal["up", "down"] = "up"


class DealTaskTrigger(DealTriggerModel):
    type: Literal["deal_task_created", "deal_task_completed"]
    task_type: str | None = Field(default=None, min_length=1, max_length=64)


class DealEmailTrigger(DealTriggerModel):
    """A 1:1 email from the deal was sent, or its contact replied to one."""

    type: Literal["deal_email_sent", "deal_email_replied"]


DEAL_TRIGGERS = (
    DealEnteredPipelineTrigger
    | DealStageTrigger
    | DealStatusTrigger
    | DealValueTrigger
    | DealOwnerTrigger
    | DealFieldTrigger
    | DealScoreTrigger
    | DealTaskTrigger
    | DealEmailTrigger
)


@dataclass(frozen=True, slots=True)
class DealNames:
    """Pipeline names, stage titles (with their pipeline) and user emails by id."""

    pipelines: dict[int, str]
    stages: dict[int, tuple[int, str]]
    users: dict[int, str]

    @classmethod
    def load(cls, session: Session) -> DealNames:
        return cls(
            pipelines={i: n for i, n in session.execute(select(Pipeline.id, Pipeline.name))},
            stages={
                i: (p, t)
                for i, p, t in session.execute(select(Stage.id, Stage.pipeline_id, Stage.title))
            },
            users={i: e for i, e in session.execute(select(User.id, User.email))},
        )

    def pipeline(self, ref: Ref | None, pipeline_id: Any) -> bool:
        if ref is None:
            return True
        if isinstance(ref, int):
            return bool(ref == pipeline_id)
        return _same(self.pipelines.get(pipeline_id), ref)

    def stage(self, ref: Ref | None, stage_id: Any) -> bool:
        if ref is None:
            return True
        if isinstance(ref, int):
            return bool(ref == stage_id)
        found = self.stages.get(stage_id)
        return found is not None and _same(found[1], ref)

    def user(self, ref: Ref | None, user_id: Any) -> bool:
        if ref is None:
            return True
        if isinstance(ref, int):
            return bool(ref == user_id)
        return _same(self.users.get(user_id), ref)


def _same(name: str | None, ref: str) -> bool:
    return name is not None and name.casefold() == ref.strip().casefold()


DealPredicate = Callable[[Any, str, dict[str, Any], DealNames], bool]


def _entered(t: DealEnteredPipelineTrigger, kind: str, d: dict[str, Any], n: DealNames) -> bool:
    if kind == "deal_stage_changed" and d.get("from_pipeline_id") == d.get("pipeline_id"):
        return False  # moved within its pipeline
    return n.pipeline(t.pipeline, d.get("pipeline_id"))


def _stage(t: DealStageTrigger, _k: str, d: dict[str, Any], n: DealNames) -> bool:
    return (
        n.pipeline(t.pipeline, d.get("pipeline_id"))
        and n.stage(t.from_, d.get("from_stage_id"))
        and n.stage(t.to, d.get("to_stage_id"))
    )


def _status(t: DealStatusTrigger, _k: str, d: dict[str, Any], _n: DealNames) -> bool:
    return (t.to is None or d.get("new") == t.to) and (t.from_ is None or d.get("old") == t.from_)


def _value(t: DealValueTrigger, _k: str, d: dict[str, Any], _n: DealNames) -> bool:
    old, new = d.get("old"), d.get("new")
    if t.direction is None:
        return True
    if not isinstance(old, int) or not isinstance(new, int):
        return False
    return new > old if t.direction == "up" else new < old


def _score(t: DealScoreTrigger, _k: str, d: dict[str, Any], _n: DealNames) -> bool:
    old, new = d.get("old"), d.get("new")
    if not isinstance(old, int) or not isinstance(new, int):
        return False
    if t.direction == "up":
        return old < t.threshold <= new
    return old >= t.threshold > new


def _task(t: DealTaskTrigger, _k: str, d: dict[str, Any], _n: DealNames) -> bool:
    return t.task_type is None or str(d.get("task_type", "")).lower() == t.task_type.lower()


# (type, the activity types it listens to, its predicate)
SPECS: list[tuple[str, Callable[[Any], list[str]], DealPredicate]] = [
    ("deal_entered_pipeline", lambda t: ["deal_created", "deal_stage_changed"], _entered),
    ("deal_stage_changed", lambda t: ["deal_stage_changed"], _stage),
    ("deal_status_changed", lambda t: ["deal_status_changed"], _status),
    ("deal_value_changed", lambda t: ["deal_value_changed"], _value),
    (
        "deal_owner_changed",
        lambda t: ["deal_owner_changed"],
        lambda t, _k, d, n: n.user(t.to, d.get("new")),
    ),
    (
        "deal_field_changed",
        lambda t: ["deal_field_changed"],
        lambda t, _k, d, _n: d.get("field") == t.field and (t.to is None or d.get("new") == t.to),
    ),
    ("deal_score_threshold", lambda t: ["deal_score_changed"], _score),
    ("deal_task_created", lambda t: ["deal_task_created"], _task),
    ("deal_task_completed", lambda t: ["deal_task_completed"], _task),
    ("deal_email_sent", lambda t: ["deal_email_sent"], lambda t, _k, d, _n: True),
    ("deal_email_replied", lambda t: ["deal_email_replied"], lambda t, _k, d, _n: True),
]
