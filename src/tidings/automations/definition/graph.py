"""The static checks of a definition: unknown step ids, duplicates, unreachable steps, loops
without a wait, goals that can never hold. Each problem names its path.

They read the steps as written (the raw objects), not the parsed models, so that they run even
when some steps or goals fail to parse: `validate` then reports a schema error, a goal error,
an unreachable step and a loop without a wait in one answer, each with its path, instead of
the graph's problems appearing only once the others are fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidings.automations.definition.schema import END, Definition, Step


def problem(path: str, message: str) -> dict[str, str]:
    """One validation problem, as ValidationFailed lists them (parsing reports its own too)."""
    return {"field": path or "definition", "message": message}


@dataclass(frozen=True, slots=True)
class Node:
    """One step as the graph checks see it: its id (None when it has no usable one), the steps
    it can continue to as (key, target) pairs, and whether it waits."""

    index: int
    id: str | None
    targets: tuple[tuple[str, str], ...]
    waits: bool


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def step_targets(raw: Mapping[str, Any], following: str | None) -> list[tuple[str, str]]:
    """(key, target) pairs a step written as `raw` can continue to; `following` is the id of
    the step after it (END after the last). Targets that are not text are left out (parsing
    reports them)."""
    default = _text(raw.get("next")) or following
    pairs: list[tuple[str, str | None]]
    if "end" in raw:
        return []
    if "goto" in raw:
        pairs = [("goto", _text(raw["goto"]))]
    elif "if" in raw:
        pairs = [
            ("then", _text(raw.get("then")) or default),
            ("else", _text(raw.get("else")) or default),
        ]
    elif "split" in raw:
        branches = raw["split"] if isinstance(raw["split"], list) else []
        pairs = [
            (f"split[{i}].to", _text(b.get("to")) if isinstance(b, dict) else None)
            for i, b in enumerate(branches)
        ]
    else:
        pairs = [("next", default)]
        if _text(raw.get("empty")):  # assign_coupon: where a run goes when the pool is empty
            pairs.append(("empty", raw["empty"]))
        wait = raw.get("wait")
        if isinstance(wait, dict) and _text(wait.get("on_timeout")):
            pairs.append(("wait.on_timeout", wait["on_timeout"]))
    return [(key, target) for key, target in pairs if target is not None]


def successors(definition: Definition, step: Step) -> list[tuple[str, str]]:
    """(key, target) pairs a parsed step can continue to."""
    ids = definition.step_ids()
    position = ids.index(step.id)
    following = ids[position + 1] if position + 1 < len(ids) else END
    return step_targets(step.model_dump(mode="json", by_alias=True), following)


def nodes(raw_steps: Sequence[Any]) -> list[Node]:
    """The steps as written (objects; anything else is skipped) as graph nodes."""
    ids = [_text(raw.get("id")) if isinstance(raw, dict) else None for raw in raw_steps]
    found = []
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            continue
        following = ids[index + 1] if index + 1 < len(ids) else END
        found.append(Node(index, ids[index], tuple(step_targets(raw, following)), "wait" in raw))
    return found


def check_graph(
    raw_steps: Sequence[Any], raw_goals: Sequence[Any], goal_conditions: Mapping[int, Any]
) -> list[dict[str, str]]:
    """Unknown step ids, duplicates, unreachable steps, loops without a wait, over the steps
    and goals as written; `goal_conditions`: the parsed `when` of each goal that parsed (by
    index), for the goals that can never hold."""
    problems: list[dict[str, str]] = []
    steps = nodes(raw_steps)
    seen: set[str] = set()
    for node in steps:
        if node.id is None:
            continue
        if node.id in seen or node.id == END:
            problems.append(
                problem(f"steps[{node.index}].id", f"{node.id!r} is used twice or reserved")
            )
        seen.add(node.id)
    known = seen | {END}
    edges: dict[str, list[str]] = {}
    for node in steps:
        for key, target in node.targets:
            if target not in known:
                problems.append(
                    problem(f"steps[{node.index}].{key}", f"unknown step id {target!r}")
                )
            elif target != END and node.id is not None:
                edges.setdefault(node.id, []).append(target)
    # Reachability needs every step's id: a step without one hides where the steps around it
    # lead (parsing reports it), and guessing would report steps as unreachable that are not.
    complete = len(steps) == len(raw_steps) and all(node.id is not None for node in steps)
    starts = [str(steps[0].id)] if complete and steps else []
    for index, raw in enumerate(raw_goals):
        jump_to = _text(raw.get("jump_to")) if isinstance(raw, dict) else None
        if jump_to is not None and jump_to not in known:
            problems.append(problem(f"goals[{index}].jump_to", f"unknown step id {jump_to!r}"))
        elif jump_to is not None and jump_to != END:
            starts.append(jump_to)
        if index in goal_conditions and _never_holds(goal_conditions[index]):
            problems.append(problem(f"goals[{index}].when", "this condition can never hold"))
    if starts:
        reachable = _reach(edges, starts)
        for node in steps:
            if node.id is not None and node.id not in reachable:
                problems.append(problem(f"steps[{node.index}]", f"step {node.id!r} is unreachable"))
    problems.extend(_instant_loops(steps, edges))
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


def _instant_loops(steps: Sequence[Node], edges: dict[str, list[str]]) -> list[dict[str, str]]:
    """A cycle through steps none of which waits would spin forever: refuse it."""
    waits = {node.id for node in steps if node.waits}
    first_index: dict[str, int] = {}
    for node in steps:
        if node.id is not None:
            first_index.setdefault(node.id, node.index)
    instant = {
        step: [t for t in targets if t not in waits]
        for step, targets in edges.items()
        if step not in waits
    }
    state: dict[str, int] = {}
    problems: list[dict[str, str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in instant.get(node, []):
            if state.get(target) == 1:
                loop = (
                    [*trail[trail.index(target) :], target] if target in trail else [node, target]
                )
                problems.append(
                    problem(
                        f"steps[{first_index[target]}]",
                        "loop without a wait: " + " -> ".join(loop),
                    )
                )
            elif state.get(target) is None:
                visit(target, [*trail, target])
        state[node] = 2

    for step in instant:
        if state.get(step) is None:
            visit(step, [step])
    return problems


def _never_holds(condition: Any) -> bool:
    """Conditions that are contradictions on their face: and(X, not X) of the same leaf."""
    kind = getattr(condition, "kind", None)
    if kind != "and":
        return False
    items = list(condition.items)
    negated = [i.item for i in items if getattr(i, "kind", None) == "not"]
    return any(n == i for n in negated for i in items)
