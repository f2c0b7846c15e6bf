"""The static checks of a parsed definition: unknown step ids, duplicates, unreachable steps,
loops without a wait, goals that can never hold. Each problem names its path."""

from __future__ import annotations

from typing import Any

from tidings.automations.definition.schema import (
    END,
    Definition,
    EndStep,
    GotoStep,
    IfStep,
    SplitStep,
    Step,
    WaitStep,
)


def problem(path: str, message: str) -> dict[str, str]:
    """One validation problem, as ValidationFailed lists them (parsing reports its own too)."""
    return {"field": path or "definition", "message": message}


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
            problems.append(problem(f"steps[{index}].id", f"{step_id!r} is used twice or reserved"))
        seen.add(step_id)
    known = set(ids) | {END}
    edges: dict[str, list[str]] = {}
    for index, step in enumerate(definition.steps):
        edges[step.id] = []
        for key, target in successors(definition, step):
            if target not in known:
                problems.append(problem(f"steps[{index}].{key}", f"unknown step id {target!r}"))
            elif target != END:
                edges[step.id].append(target)
    for index, goal in enumerate(definition.goals):
        if goal.jump_to not in known:
            problems.append(problem(f"goals[{index}].jump_to", f"unknown step id {goal.jump_to!r}"))
        if _never_holds(goal.when):
            problems.append(problem(f"goals[{index}].when", "this condition can never hold"))
    if problems:
        return problems
    reachable = _reach(edges, [ids[0], *(g.jump_to for g in definition.goals if g.jump_to != END)])
    for index, step_id in enumerate(ids):
        if step_id not in reachable:
            problems.append(problem(f"steps[{index}]", f"step {step_id!r} is unreachable"))
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
                    problem(
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
