"""Every deal trigger and action example in docs/deals.md parses as a definition; the names
deal triggers and steps give are checked against the database (warnings)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.automations.deal_helpers import make_crm
from tidings.automations.definition import parse_definition
from tidings.automations.references import reference_problems
from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.segments import parse_condition

DOC = (Path(__file__).parents[2] / "docs" / "deals.md").read_text()
SECTION = DOC[DOC.index("## Automations on deals") : DOC.index("## Reports")]
CODE = re.compile(r"`(\{[^`]*\})`")


def test_every_trigger_and_action_example_parses() -> None:
    triggers = steps = 0
    for line in SECTION.splitlines():
        if not line.startswith("| "):
            continue
        for example in CODE.findall(line):
            value = yaml.safe_load(example)
            if "action" in value:
                parse_definition({"name": "x", "steps": [value]})
                steps += 1
            elif "type" in value:
                parse_definition(
                    {"name": "x", "trigger": value, "steps": [{"id": "e", "end": True}]}
                )
                triggers += 1
    assert triggers >= 9 and steps >= 10


def test_the_yaml_blocks_parse() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", SECTION, re.S)
    parse_definition(yaml.safe_load(blocks[0]))
    for line in blocks[1].splitlines():
        if line.startswith("{"):
            parse_condition(yaml.safe_load(line), automation=True)
    assert "events" in yaml.safe_load(blocks[2])


def test_missing_pipelines_stages_and_users_are_warnings(
    database: Database, clock: FakeClock
) -> None:
    make_crm(database, clock)
    definition = parse_definition(
        yaml.safe_load(
            """
name: Refs
trigger: {type: deal_stage_changed, pipeline: sales, from: Lead, to: Proposl}
steps:
  - {id: d, action: add_deal, pipeline: Sale, title: T, owner: {round_robin: [ann@example.com, eve@example.com]}}
  - {id: u, action: update_deal, stage: Won, deal: {pipeline: Renewal}}
  - {id: t, action: add_task, title: Call, assignee: owner}
"""
        )
    )
    with database.session() as session:
        problems = reference_problems(session, definition)
    assert [(p["field"], p["message"]) for p in problems] == [
        ("trigger.to", "stage 'Proposl' does not exist"),
        ("steps[0].pipeline", "pipeline 'Sale' does not exist"),
        ("steps[0].owner.round_robin", "user 'eve@example.com' does not exist"),
        ("steps[1].deal.pipeline", "pipeline 'Renewal' does not exist"),
    ]
