"""The simulator runs deal automations: a scenario creates pipelines, users and deals, moves
and closes them by day, and deal triggers and actions run in the live engine on the copy."""

from __future__ import annotations

import pytest
import yaml

from tidings.automations.simulate import run_simulation
from tidings.errors import ValidationFailed

PROPOSAL = """
name: Proposal follow-up
trigger: {type: deal_stage_changed, pipeline: Sales, to: Proposal}
steps:
  - {id: task, action: add_task, type: call, title: "Call {{ contact.email }}"}
  - {id: w, wait: {condition: {triggered_deal: {status: won}}, timeout: {days: 3}, on_timeout: nudge}}
  - {id: won, action: add_tag, tag: Customer, next: end}
  - {id: nudge, action: update_deal, status: lost, lost_reason: no answer}
"""

SCENARIO = """
contacts: 20
users: [ann@example.com]
pipelines:
  - {name: Sales, currency: EUR, stages: [Lead, Proposal, Won]}
events:
  - {day: 1, add_deal: {pipeline: Sales, title: Upgrade, value: 5000}}
  - {day: 2, move_deal: {pipeline: Sales, from: Lead, to: Proposal}, percent: 50}
  - {day: 3, deal_status: {pipeline: Sales, to: won}, percent: 40}
"""


def test_a_scenario_creates_moves_and_closes_deals() -> None:
    scenario = yaml.safe_load(SCENARIO)
    output = run_simulation(yaml.safe_load(PROPOSAL), days=8, scenario=scenario, seed=3)
    lines = output.splitlines()
    assert lines[0].split()[:4] == ["day", "task", "w", "won"]
    moved = int(lines[2].split()[2])  # day 2: the moved deals' runs wait in `w`
    assert 0 < moved < 20
    last = lines[8].split()
    assert last[1:5] == ["0", "0", "0", "0"] and int(last[5]) == moved  # all completed
    assert "deals at the end (open / won / lost):" in output
    stages = {
        line.split("/")[1].split()[0]: line.split()[-3:] for line in lines if "Sales / " in line
    }
    open_lead = int(stages["Lead"][0])
    won = sum(int(v[1]) for v in stages.values())
    lost = int(stages["Proposal"][2])
    assert open_lead + won + lost == 20  # every deal: still a lead, won, or lost by the nudge
    assert lost > 0 and won > 0


def test_a_bad_deal_event_names_its_place() -> None:
    scenario = yaml.safe_load(SCENARIO)
    scenario["events"].append({"day": 2, "move_deal": {"pipeline": "Sales", "to": "Nowhere"}})
    with pytest.raises(ValidationFailed, match=r"scenario.events\[1\].move_deal.to: no stage"):
        run_simulation(yaml.safe_load(PROPOSAL), days=3, scenario=scenario)
