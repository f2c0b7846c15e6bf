"""Definitions: every problem reported with its path; graph checks; YAML and JSON alike."""

from __future__ import annotations

import json

import pytest

from tidings.automations.definition import load_text, parse_definition
from tidings.errors import ValidationFailed


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        load_text(text)
    return [(e["field"], e["message"]) for e in info.value.errors]


def test_yaml_and_json_give_the_same_definition() -> None:
    data = {
        "name": "Same",
        "trigger": {"type": "tag_added", "tag": "X"},
        "steps": [{"id": "a", "action": "add_tag", "tag": "Y"}, {"id": "w", "wait": {"hours": 1}}],
    }
    assert load_text(json.dumps(data)) == parse_definition(data)


def test_field_errors_name_their_path() -> None:
    found = problems(
        """
name: Bad
trigger: {type: tag_added}
steps:
  - {id: a, action: add_tagg, tag: X}
  - {id: b, wait: {days: 1, until: "2026-01-01T00:00:00Z"}}
  - {id: c, if: {has_tagg: X}, then: a}
  - {id: d, split: [{percent: 50, to: a}, {percent: 20, to: b}]}
  - {id: e, action: send_email}
goals:
  - {id: g, when: {has_tag: X}}
"""
    )
    fields = [f for f, _ in found]
    assert "steps[0].action" in fields
    assert "steps[1].wait" in fields
    assert "steps[2].if.has_tagg" in fields
    assert "steps[3].split" in fields
    assert "steps[4].template" in fields
    assert "goals[0].jump_to" in fields
    assert "trigger.tag_added.tag" in fields or "trigger.tag" in fields


def test_graph_checks() -> None:
    found = problems(
        """
name: Graph
steps:
  - {id: a, action: add_tag, tag: X}
  - {id: b, goto: a}
  - {id: orphan, end: true}
  - {id: c, if: {has_tag: X}, then: nowhere}
goals:
  - {id: never, when: {and: [{has_tag: X}, {not: {has_tag: X}}]}, jump_to: a}
"""
    )
    assert ("steps[3].then", "unknown step id 'nowhere'") in found
    assert ("goals[0].when", "this condition can never hold") in found
    found = problems(
        """
name: Loop
steps:
  - {id: a, action: add_tag, tag: X}
  - {id: b, goto: a}
  - {id: orphan, end: true}
"""
    )
    assert ("steps[2]", "step 'orphan' is unreachable") in found
    assert any(f == "steps[0]" and m.startswith("loop without a wait") for f, m in found)


def test_a_loop_with_a_wait_and_duplicate_ids() -> None:
    load_text(
        """
name: Fine
steps:
  - {id: a, action: add_tag, tag: X}
  - {id: w, wait: {days: 1}}
  - {id: b, goto: a}
"""
    )
    assert ("steps[1].id", "'a' is used twice or reserved") in problems(
        "name: D\nsteps:\n  - {id: a, end: true}\n  - {id: a, end: true}\n"
    )
    assert problems("name: [")[0][0].startswith("line")
