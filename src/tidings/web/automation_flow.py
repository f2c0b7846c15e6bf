"""An automation drawn as a flow: each step a box with its counts and its outgoing arrows
(next, then/else, split branches, goto), the goals with the step they jump to; and YAML
validation errors placed at the line of the YAML text where the offending value is."""

from __future__ import annotations

import re
from typing import Any

import yaml

_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def yaml_line(text: str, path: str) -> int | None:
    """The 1-based line of `path` ("steps[2].wait.days") in the YAML text, or of the deepest
    part of it that exists; None when the text does not parse or the path is empty."""
    if path.startswith("line "):
        return int(path.split()[1]) if path.split()[1].isdigit() else None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None or not path:
        return None
    line = node.start_mark.line + 1
    for index, key in _PART.findall(path):
        child = None
        if index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
        elif key and isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            key_node = next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
            if key_node is not None:
                line = key_node.start_mark.line + 1
        if child is None:
            break
        node = child
        if index:
            line = node.start_mark.line + 1
    return line


def yaml_errors(text: str, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each problem with the line it points at (None when unknown), sorted by line."""
    placed = [
        {"field": p.get("field", ""), "message": p.get("message", ""), "line": None}
        for p in problems
    ]
    for p in placed:
        p["line"] = yaml_line(text, str(p["field"]))
    return sorted(placed, key=lambda p: (p["line"] is None, p["line"] or 0))


def arrows(step: dict[str, Any], following: str | None) -> list[tuple[str, str]]:
    """A raw step's outgoing arrows as (label, target step id)."""
    if "end" in step:
        return []
    if "goto" in step:
        return [("go to", str(step["goto"]))]
    if "split" in step:
        return [(f"{b.get('percent')}%", str(b.get("to"))) for b in step["split"] or []]
    if "if" in step:
        out = [("yes", str(step.get("then") or following or "end"))]
        return [*out, ("no", str(step.get("else") or following or "end"))]
    found = step.get("next") or following
    out = [("next", str(found))] if found else [("end", "end")]
    wait = step.get("wait")
    if isinstance(wait, dict) and wait.get("on_timeout"):
        out.append(("timed out", str(wait["on_timeout"])))
    return out


def flow(definition: dict[str, Any], counts: list[dict[str, Any]]) -> dict[str, Any]:
    """The boxes of the flow in definition order, each with its counts and arrows."""
    by_id = {c["id"]: c for c in counts}
    steps = [s for s in definition.get("steps") or [] if isinstance(s, dict)]
    boxes = []
    for i, step in enumerate(steps):
        following = steps[i + 1].get("id") if i + 1 < len(steps) else None
        boxes.append(
            {
                "id": step.get("id"),
                "counts": by_id.get(step.get("id"), {}),
                "arrows": arrows(step, following),
            }
        )
    goals = [
        {"id": g.get("id"), "jump_to": g.get("jump_to")}
        for g in definition.get("goals") or []
        if isinstance(g, dict)
    ]
    return {"boxes": boxes, "goals": goals}
