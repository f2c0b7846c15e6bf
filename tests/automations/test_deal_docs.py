"""Every deal trigger and action example in docs/deals.md parses as a definition."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tidings.automations.definition import parse_definition
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
