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


ALL_AT_ONCE = """
name: All at once
steps:
  - {id: a, action: add_tag}
  - {id: b, goto: a}
  - {id: orphan, end: true}
goals:
  - {id: g, when: {has_tag: X}, jump_to: nowhere}
"""


def test_every_problem_in_one_pass() -> None:
    """A schema error, a goal error, an unreachable step and a loop without a wait: the graph
    is checked on what could be parsed, so all four come back together."""
    found = problems(ALL_AT_ONCE)
    assert ("steps[0].tag", "Field required") in found
    assert ("goals[0].jump_to", "unknown step id 'nowhere'") in found
    assert ("steps[2]", "step 'orphan' is unreachable") in found
    assert ("steps[0]", "loop without a wait: a -> b -> a") in found
    assert len(found) == 4


def test_graph_checks_survive_steps_that_do_not_parse() -> None:
    # A step that fails keeps its id and its targets: no false "unreachable", and its own
    # unknown target is reported with the rest.
    found = problems(
        """
name: Partial
steps:
  - {id: a, if: {has_tagg: X}, then: c, else: nowher}
  - {id: b, end: true}
  - {id: c, action: send_email}
"""
    )
    assert (
        "steps[0].if.has_tagg",
        "unknown condition; expected one of: and, or, not, field, "
        "has_tag, lacks_tag, in_list, status, score, created, event, purchase_total, has_deal",
    ) in found
    assert ("steps[0].else", "unknown step id 'nowher'") in found
    assert ("steps[2].template", "Field required") in found
    assert ("steps[1]", "step 'b' is unreachable") in found
    assert len(found) == 4
    # A step without a usable id: reachability is not guessed.
    found = problems("name: N\nsteps:\n  - {action: add_tag, tag: X}\n  - {id: b, end: true}\n")
    assert [f for f, _ in found] == ["steps[0].id"]
