"""Parsing a definition: YAML/JSON in, a validated Definition out, or ValidationFailed listing
every problem with its path (`steps[2].then: unknown step id 'thx'`)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from tidings.automations.definition.graph import check_graph, problem
from tidings.automations.definition.schema import (
    ACTIONS,
    STEP_KINDS,
    Action,
    Definition,
    EndStep,
    Goal,
)
from tidings.automations.definition.system_steps import JobIfStep, kind_problems
from tidings.errors import ValidationFailed
from tidings.inputs import NUL_MESSAGE, find_nul


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


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
        problems.append(problem(where, message))
    return problems


def _step_model(
    raw: dict[str, Any], path: str, kind: Any = "contact"
) -> tuple[Any, list[dict[str, str]]]:
    if "action" in raw:
        action = raw["action"]
        if action not in ACTIONS:
            return None, [
                problem(
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
        return None, [problem(path, message)]
    if kinds[0] == "if" and kind == "system":
        return JobIfStep, []  # a system automation tests the previous job, not a contact
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
        problems.append(problem(where, str(error.get("message", exc.detail))))
    return problems


def parse_definition(data: Any) -> Definition:
    """Validate a definition object; ValidationFailed lists every problem with its path."""
    if not isinstance(data, dict):
        raise ValidationFailed(
            "definition: must be an object", errors=[problem("", "must be an object")]
        )
    where = find_nul(data)
    if where is not None:
        nul = problem(where, NUL_MESSAGE)
        raise ValidationFailed(f"{nul['field']}: {NUL_MESSAGE}", errors=[nul])
    problems: list[dict[str, str]] = []
    steps: list[Any] = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(problem("steps", "must be a non-empty list"))
        raw_steps = []
    for index, raw in enumerate(raw_steps):
        path = f"steps[{index}]"
        if not isinstance(raw, dict):
            problems.append(problem(path, "must be an object"))
            continue
        model, errors = _step_model(raw, path, data.get("kind", "contact"))
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
        problems.append(problem("goals", "must be a list"))
        raw_goals = []
    conditions: dict[int, Any] = {}
    for index, raw in enumerate(raw_goals):
        path = f"goals[{index}]"
        try:
            goals.append(Goal.model_validate(raw))
            conditions[index] = goals[-1].when
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
    problems.extend(kind_problems(data))
    # The graph is checked on the steps as written, even when some did not parse: every
    # problem in one answer.
    problems.extend(check_graph(raw_steps, raw_goals, conditions))
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
        raise ValidationFailed(f"{where}: {message}", errors=[problem(where, message)]) from None
    return parse_definition(data)


def dump_json(definition: Definition) -> str:
    return json.dumps(definition.to_json(), indent=2)
