"""The definition's schema: one frozen pydantic model per step, action and goal, and the
Definition that holds them (triggers have theirs in tidings.automations.triggers).

A step is an object with an `id` and exactly one kind key: action, wait, if, split, goto, end.
Every step may name its successor with `next`; by default it is the following step, and the
last step ends the run. A new step kind is a model here, in `Step` and `STEP_KINDS`, and a
handler in the engine's step table (tidings.automations.interpreter.STEPS); a new action is a
model here, in `Action` and `ACTIONS`, and a handler in tidings.automations.actions.HANDLERS.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tidings.automations.definition.deal_steps import DEAL_ACTION_STEPS, DEAL_ACTIONS
from tidings.automations.definition.system_steps import JobIfStep, JobStep
from tidings.automations.triggers import Trigger
from tidings.contacts.policy import ContactStatus
from tidings.segments import Condition, parse_condition

STEP_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
END = "end"
DEFAULT_STATUSES = (
    ContactStatus.SUBSCRIBED,
    ContactStatus.PENDING,
    ContactStatus.UNSUBSCRIBED,
    ContactStatus.TRANSACTIONAL,
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(Model):
    days: float = 0
    hours: float = 0
    minutes: float = 0
    seconds: float = 0

    @model_validator(mode="after")
    def _positive(self) -> Duration:
        if min(self.days, self.hours, self.minutes, self.seconds) < 0:
            raise ValueError("a duration cannot be negative")
        return self

    @property
    def delta(self) -> timedelta:
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )


def _condition(value: Any) -> Condition:
    if isinstance(value, BaseModel):
        return value  # type: ignore[return-value]
    return parse_condition(value, automation=True)


ConditionField = Annotated[Any, Field(description="a segment condition")]


class StepBase(Model):
    id: str = Field(pattern=STEP_ID)
    next: str | None = None


# --- actions ---------------------------------------------------------------------------------


class TagAction(StepBase):
    action: Literal["add_tag", "remove_tag"]
    tag: str | list[str] = Field(description="one tag name or a list of them")

    @field_validator("tag")
    @classmethod
    def _names(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names or any(not n.strip() or len(n) > 200 for n in names):
            raise ValueError("tag names must be 1-200 characters")
        return value

    @property
    def tags(self) -> list[str]:
        return [self.tag.strip()] if isinstance(self.tag, str) else [t.strip() for t in self.tag]


class ListAction(StepBase):
    action: Literal["subscribe_list", "unsubscribe_list"]
    list: str = Field(min_length=1, max_length=200)


class SetFieldAction(StepBase):
    action: Literal["set_field"]
    field: str = Field(min_length=1, max_length=64)
    value: Any = None


class SetStatusAction(StepBase):
    action: Literal["set_status"]
    status: ContactStatus
    reason: str | None = None


class ScoreAction(StepBase):
    action: Literal["adjust_score"]
    by: int


class SendEmailAction(StepBase):
    action: Literal["send_email"]
    template: str = Field(min_length=1, max_length=200)
    message_class: Literal["automation", "transactional"] = "automation"


class NotifyAction(StepBase):
    action: Literal["notify"]
    to: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str = Field(min_length=1, max_length=500)
    body: str = ""


class WebhookAction(StepBase):
    action: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    body: dict[str, Any] = Field(default_factory=dict)


class StartAutomationAction(StepBase):
    action: Literal["start_automation"]
    automation: str = Field(min_length=1, max_length=200)
    # Exit a running enrolment there first, so the contact starts again at the beginning.
    restart: bool = False


class ExitAutomationAction(StepBase):
    action: Literal["exit_automation"]
    automation: str = Field(min_length=1, max_length=200)


class AssignCouponAction(StepBase):
    """One code of a coupon pool per contact (the same one if asked again), stored in a
    contact field (default `coupon_<pool>`, lower case); `empty`: where a run goes when the
    pool is empty (default: on, with the outcome `empty` recorded)."""

    action: Literal["assign_coupon"]
    pool: str = Field(min_length=1, max_length=100)
    field: str | None = Field(default=None, min_length=1, max_length=64)
    empty: str | None = None

    @property
    def field_name(self) -> str:
        return self.field or f"coupon_{self.pool.lower()}"  # coupons.service.field_key


ActionStep = (
    TagAction
    | ListAction
    | SetFieldAction
    | SetStatusAction
    | ScoreAction
    | SendEmailAction
    | NotifyAction
    | WebhookAction
    | StartAutomationAction
    | ExitAutomationAction
    | AssignCouponAction
    | DEAL_ACTION_STEPS
)
Action = Annotated[ActionStep, Field(discriminator="action")]
ACTIONS = (
    "add_tag",
    "remove_tag",
    "subscribe_list",
    "unsubscribe_list",
    "set_field",
    "set_status",
    "adjust_score",
    "send_email",
    "notify",
    "webhook",
    "start_automation",
    "exit_automation",
    "assign_coupon",
    *DEAL_ACTIONS,
)


# --- control steps ---------------------------------------------------------------------------


# What the events a goal or a condition wait asks about may be: only those after the run
# entered the automation (default), or any, however old (before issue 13, the only meaning).
Since = Literal["entry", "any"]


class Wait(Model):
    """Exactly one of: a duration; `until` a date/time; `after_entry` (a duration counted
    from when the contact entered the automation); `condition` (with `timeout`/`on_timeout`,
    and `since`: which events the condition sees, default `entry`)."""

    days: float | None = None
    hours: float | None = None
    minutes: float | None = None
    seconds: float | None = None
    until: datetime | None = None
    after_entry: Duration | None = None
    condition: ConditionField = None
    timeout: Duration | None = None
    on_timeout: str | None = None
    since: Since | None = None

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone (e.g. 2026-05-01T09:00:00Z)")
        return value

    @field_validator("condition", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return None if value is None else _condition(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Wait:
        kinds = [
            self.duration is not None,
            self.until is not None,
            self.after_entry is not None,
            self.condition is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one of: a duration (days/hours/minutes/seconds), until, "
                "after_entry, condition"
            )
        if self.condition is None and (self.timeout or self.on_timeout or self.since):
            raise ValueError("timeout, on_timeout and since only go with condition")
        if self.condition is not None and self.timeout is None:
            raise ValueError("a condition wait needs a timeout")
        return self

    @property
    def since_entry(self) -> bool:
        """A condition wait sees only events after the run entered (unless `since: any`)."""
        return self.since != "any"

    @property
    def duration(self) -> timedelta | None:
        parts = (self.days, self.hours, self.minutes, self.seconds)
        if all(p is None for p in parts):
            return None
        if any(p is not None and p < 0 for p in parts):
            raise ValueError("a duration cannot be negative")
        return timedelta(
            days=self.days or 0,
            hours=self.hours or 0,
            minutes=self.minutes or 0,
            seconds=self.seconds or 0,
        )


class WaitStep(StepBase):
    wait: Wait


class IfStep(StepBase):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    if_: ConditionField = Field(alias="if")
    then: str | None = None
    else_: str | None = Field(default=None, alias="else")

    @field_validator("if_", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _condition(value)


class Branch(Model):
    percent: float = Field(gt=0, le=100)
    to: str


class SplitStep(StepBase):
    split: list[Branch] = Field(min_length=2)

    @field_validator("split")
    @classmethod
    def _sum(cls, value: list[Branch]) -> list[Branch]:
        if abs(sum(b.percent for b in value) - 100) > 1e-9:
            raise ValueError("percentages must add up to 100")
        return value


class GotoStep(StepBase):
    goto: str


class EndStep(StepBase):
    end: Literal[True] = True


Step = ActionStep | WaitStep | IfStep | SplitStep | GotoStep | EndStep | JobStep | JobIfStep
STEP_KINDS: dict[str, Any] = {
    "job": JobStep,
    "wait": WaitStep,
    "if": IfStep,
    "split": SplitStep,
    "goto": GotoStep,
    "end": EndStep,
}


class Goal(Model):
    """`when` holds -> the run jumps to `jump_to` (once per run). Events count only when they
    occurred after the run entered (`since: entry`, the default); `since: any` also counts
    older ones, so a contact who met the goal before entering completes it at once."""

    id: str = Field(pattern=STEP_ID)
    when: ConditionField
    jump_to: str
    since: Since = "entry"

    @property
    def since_entry(self) -> bool:
        return self.since == "entry"

    @field_validator("when", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _condition(value)


class Definition(Model):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    # contact: runs per contact (the engine); system: runs per tick or finished event
    # (tidings.system), with job steps and no contact.
    kind: Literal["contact", "system"] = "contact"
    trigger: Trigger | None = None
    runs: Literal["once", "multiple"] = "once"
    allow_statuses: tuple[ContactStatus, ...] = DEFAULT_STATUSES
    steps: tuple[Step, ...] = Field(min_length=1)
    goals: tuple[Goal, ...] = ()

    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        return self._index()[step_id]

    def has_step(self, step_id: str) -> bool:
        return step_id in self._index()

    def _index(self) -> dict[str, Step]:
        cached: dict[str, Step] | None = self.__dict__.get("_steps_by_id")
        if cached is None:
            cached = {s.id: s for s in self.steps}
            object.__setattr__(self, "_steps_by_id", cached)  # frozen model: a private cache
        return cached

    def next_of(self, step_id: str) -> str:
        """The step after `step_id` when it does not branch: `next`, the following one, or end."""
        step = self.step(step_id)
        if step.next:
            return step.next
        ids = self.step_ids()
        position = ids.index(step_id)
        return ids[position + 1] if position + 1 < len(ids) else END

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude_defaults=False
        )


def parse_duration(value: dict[str, Any] | timedelta) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return Duration.model_validate(value).delta
