"""The automation definition: YAML/JSON in, typed pydantic models out, errors named by path.

    name: Welcome series
    trigger: {type: list_subscribed, list: Newsletter}
    runs: once                      # once | multiple
    allow_statuses: [subscribed, transactional]
    steps:
      - {id: tag, action: add_tag, tag: New}
      - {id: wait1, wait: {days: 2}}
      - {id: check, if: {event: {type: email_opened, within_days: 2}}, then: thanks, else: nudge}
      - {id: nudge, action: send_email, template: reminder}
      - {id: thanks, action: adjust_score, by: 5}
    goals:
      - {id: bought, when: {event: {type: purchase}}, jump_to: thanks}

A step is an object with an `id` and exactly one kind key: action, wait, if, split, goto, end.
Every step may name its successor with `next`; by default it is the following step, and the
last step ends the run.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tidings.automations.triggers import Trigger
from tidings.contacts.policy import ContactStatus
from tidings.errors import ValidationFailed
from tidings.inputs import NUL_MESSAGE, find_nul
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
    return parse_condition(value)


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


Action = Annotated[
    TagAction
    | ListAction
    | SetFieldAction
    | SetStatusAction
    | ScoreAction
    | SendEmailAction
    | NotifyAction
    | WebhookAction
    | StartAutomationAction
    | ExitAutomationAction,
    Field(discriminator="action"),
]
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
)


# --- control steps ---------------------------------------------------------------------------


class Wait(Model):
    """Exactly one of: a duration; `until` a date/time; `after_entry` (a duration counted
    from when the contact entered the automation); `condition` (with `timeout`/`on_timeout`)."""

    days: float | None = None
    hours: float | None = None
    minutes: float | None = None
    seconds: float | None = None
    until: datetime | None = None
    after_entry: Duration | None = None
    condition: ConditionField = None
    timeout: Duration | None = None
    on_timeout: str | None = None

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
        if self.condition is None and (self.timeout or self.on_timeout):
            raise ValueError("timeout and on_timeout only go with condition")
        if self.condition is not None and self.timeout is None:
            raise ValueError("a condition wait needs a timeout")
        return self

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


Step = (
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
    | WaitStep
    | IfStep
    | SplitStep
    | GotoStep
    | EndStep
)
STEP_KINDS: dict[str, Any] = {
    "wait": WaitStep,
    "if": IfStep,
    "split": SplitStep,
    "goto": GotoStep,
    "end": EndStep,
}


class Goal(Model):
    id: str = Field(pattern=STEP_ID)
    when: ConditionField
    jump_to: str

    @field_validator("when", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _condition(value)


class Definition(Model):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    trigger: Trigger | None = None
    runs: Literal["once", "multiple"] = "once"
    allow_statuses: tuple[ContactStatus, ...] = DEFAULT_STATUSES
    steps: tuple[Step, ...] = Field(min_length=1)
    goals: tuple[Goal, ...] = ()

    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        return self._index()[step_id]

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


# --- parsing ---------------------------------------------------------------------------------


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def _problem(path: str, message: str) -> dict[str, str]:
    return {"field": path or "definition", "message": message}


def _pydantic_errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    problems = []
    for error in exc.errors():
        where = prefix
        for part in error.get("loc", ()):
            if isinstance(part, str) and part in ACTIONS and where.startswith("steps["):
                continue  # pydantic's union tag, not a key the user wrote
            where = _join(where, part)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown key"
        problems.append(_problem(where, message))
    return problems


def _step_model(raw: dict[str, Any], path: str) -> tuple[Any, list[dict[str, str]]]:
    if "action" in raw:
        action = raw["action"]
        if action not in ACTIONS:
            return None, [
                _problem(
                    _join(path, "action"), f"unknown action {action!r}; one of {', '.join(ACTIONS)}"
                )
            ]
        return Action, []
    kinds = [key for key in STEP_KINDS if key in raw]
    if len(kinds) != 1:
        message = (
            "a step needs exactly one of: action, " + ", ".join(STEP_KINDS)
            if not kinds
            else f"a step has one kind, found {', '.join(kinds)}"
        )
        return None, [_problem(path, message)]
    return STEP_KINDS[kinds[0]], []


def _condition_errors(exc: ValidationFailed, path: str) -> list[dict[str, str]]:
    problems = []
    for error in exc.errors or [{"field": "", "message": exc.detail}]:
        inner = str(error.get("field", ""))
        where = (
            path
            if inner in ("", "condition")
            else _join(path, inner)
            if not inner.startswith("[")
            else path + inner
        )
        problems.append(_problem(where, str(error.get("message", exc.detail))))
    return problems


def parse_definition(data: Any) -> Definition:
    """Validate a definition object; ValidationFailed lists every problem with its path."""
    from pydantic import TypeAdapter

    if not isinstance(data, dict):
        raise ValidationFailed(
            "definition: must be an object", errors=[_problem("", "must be an object")]
        )
    where = find_nul(data)
    if where is not None:
        problem = _problem(where, NUL_MESSAGE)
        raise ValidationFailed(f"{problem['field']}: {NUL_MESSAGE}", errors=[problem])
    problems: list[dict[str, str]] = []
    steps: list[Any] = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(_problem("steps", "must be a non-empty list"))
        raw_steps = []
    for index, raw in enumerate(raw_steps):
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            problems.append(_problem(path, "must be an object"))
            continue
        model, errors = _step_model(raw, path)
        if errors:
            problems.extend(errors)
            continue
        try:
            steps.append(TypeAdapter(model).validate_python(raw))
        except ValidationError as exc:
            problems.extend(_pydantic_errors(exc, path))
        except ValidationFailed as exc:
            key = "if" if "if" in raw else "wait.condition"
            problems.extend(_condition_errors(exc, _join(path, key)))
    goals: list[Goal] = []
    raw_goals = data.get("goals") or []
    if not isinstance(raw_goals, list):
        problems.append(_problem("goals", "must be a list"))
        raw_goals = []
    for index, raw in enumerate(raw_goals):
        path = f"goals[{index}]"
        try:
            goals.append(Goal.model_validate(raw))
        except ValidationError as exc:
            problems.extend(_pydantic_errors(exc, path))
        except ValidationFailed as exc:
            problems.extend(_condition_errors(exc, _join(path, "when")))
    rest = {k: v for k, v in data.items() if k not in ("steps", "goals")}
    definition: Definition | None = None
    if not problems:
        try:
            definition = Definition.model_validate({**rest, "steps": steps, "goals": goals})
        except ValidationError as exc:
            problems.extend(_pydantic_errors(exc, ""))
    else:
        try:
            Definition.model_validate({**rest, "steps": [EndStep(id="x")], "goals": []})
        except ValidationError as exc:
            problems.extend(_pydantic_errors(exc, ""))
    if definition is not None:
        problems.extend(check_graph(definition))
    if problems:
        first = problems[0]
        raise ValidationFailed(f"{first['field']}: {first['message']}", errors=problems)
    assert definition is not None
    return definition


def load_text(text: str, *, source: str = "definition") -> Definition:
    """Parse YAML (a superset of JSON) text into a validated definition."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else source
        message = f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}"
        raise ValidationFailed(f"{where}: {message}", errors=[_problem(where, message)]) from None
    return parse_definition(data)


def dump_json(definition: Definition) -> str:
    return json.dumps(definition.to_json(), indent=2)


# --- static checks ---------------------------------------------------------------------------


def successors(definition: Definition, step: Step) -> list[tuple[str, str]]:
    """(key, target) pairs a step can continue to, for the graph checks."""
    if isinstance(step, EndStep):
        return []
    if isinstance(step, GotoStep):
        return [("goto", step.goto)]
    if isinstance(step, IfStep):
        following = definition.next_of(step.id)
        return [("then", step.then or following), ("else", step.else_ or following)]
    if isinstance(step, SplitStep):
        return [(f"split[{i}].to", b.to) for i, b in enumerate(step.split)]
    targets = [("next", definition.next_of(step.id))]
    if isinstance(step, WaitStep) and step.wait.on_timeout:
        targets.append(("wait.on_timeout", step.wait.on_timeout))
    return targets


def check_graph(definition: Definition) -> list[dict[str, str]]:
    """Unknown step ids, duplicates, unreachable steps, loops without a wait."""
    problems: list[dict[str, str]] = []
    ids = definition.step_ids()
    seen: set[str] = set()
    for index, step_id in enumerate(ids):
        if step_id in seen or step_id == END:
            problems.append(
                _problem(f"steps[{index}].id", f"{step_id!r} is used twice or reserved")
            )
        seen.add(step_id)
    known = set(ids) | {END}
    edges: dict[str, list[str]] = {}
    for index, step in enumerate(definition.steps):
        edges[step.id] = []
        for key, target in successors(definition, step):
            if target not in known:
                problems.append(_problem(f"steps[{index}].{key}", f"unknown step id {target!r}"))
            elif target != END:
                edges[step.id].append(target)
    for index, goal in enumerate(definition.goals):
        if goal.jump_to not in known:
            problems.append(
                _problem(f"goals[{index}].jump_to", f"unknown step id {goal.jump_to!r}")
            )
        if _never_holds(goal.when):
            problems.append(_problem(f"goals[{index}].when", "this condition can never hold"))
    if problems:
        return problems
    reachable = _reach(edges, [ids[0], *(g.jump_to for g in definition.goals if g.jump_to != END)])
    for index, step_id in enumerate(ids):
        if step_id not in reachable:
            problems.append(_problem(f"steps[{index}]", f"step {step_id!r} is unreachable"))
    problems.extend(_instant_loops(definition, edges))
    return problems


def _reach(edges: dict[str, list[str]], starts: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(edges.get(node, []))
    return seen


def _instant_loops(definition: Definition, edges: dict[str, list[str]]) -> list[dict[str, str]]:
    """A cycle through steps none of which waits would spin forever: refuse it."""
    waits = {s.id for s in definition.steps if isinstance(s, WaitStep)}
    instant = {
        node: [t for t in targets if t not in waits]
        for node, targets in edges.items()
        if node not in waits
    }
    state: dict[str, int] = {}
    problems: list[dict[str, str]] = []
    ids = definition.step_ids()

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in instant.get(node, []):
            if state.get(target) == 1:
                loop = (
                    [*trail[trail.index(target) :], target] if target in trail else [node, target]
                )
                problems.append(
                    _problem(
                        f"steps[{ids.index(target)}]",
                        "loop without a wait: " + " -> ".join(loop),
                    )
                )
            elif state.get(target) is None:
                visit(target, [*trail, target])
        state[node] = 2

    for node in instant:
        if state.get(node) is None:
            visit(node, [node])
    return problems


def _never_holds(condition: Any) -> bool:
    """Conditions that are contradictions on their face: and(X, not X) of the same leaf."""
    kind = getattr(condition, "kind", None)
    if kind != "and":
        return False
    items = list(condition.items)
    negated = [i.item for i in items if getattr(i, "kind", None) == "not"]
    return any(n == i for n in negated for i in items)


def parse_duration(value: dict[str, Any] | timedelta) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return Duration.model_validate(value).delta
