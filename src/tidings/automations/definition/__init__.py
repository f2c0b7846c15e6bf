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

Three modules: `schema` (the pydantic models of steps, actions, goals and the Definition),
`parse` (parse_definition, load_text: every problem with its path) and `graph` (the static
checks: unknown ids, unreachable steps, loops without a wait). Import from here.
"""

from tidings.automations.definition.graph import check_graph, step_targets, successors
from tidings.automations.definition.parse import dump_json, load_text, parse_definition
from tidings.automations.definition.schema import (
    ACTIONS,
    DEFAULT_STATUSES,
    END,
    STEP_ID,
    STEP_KINDS,
    Action,
    ActionStep,
    AssignCouponAction,
    Branch,
    ConditionField,
    Definition,
    Duration,
    EndStep,
    ExitAutomationAction,
    Goal,
    GotoStep,
    IfStep,
    ListAction,
    Model,
    NotifyAction,
    ScoreAction,
    SendEmailAction,
    SetFieldAction,
    SetStatusAction,
    SplitStep,
    StartAutomationAction,
    Step,
    StepBase,
    TagAction,
    Wait,
    WaitStep,
    WebhookAction,
    parse_duration,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_STATUSES",
    "END",
    "STEP_ID",
    "STEP_KINDS",
    "Action",
    "ActionStep",
    "AssignCouponAction",
    "Branch",
    "ConditionField",
    "Definition",
    "Duration",
    "EndStep",
    "ExitAutomationAction",
    "Goal",
    "GotoStep",
    "IfStep",
    "ListAction",
    "Model",
    "NotifyAction",
    "ScoreAction",
    "SendEmailAction",
    "SetFieldAction",
    "SetStatusAction",
    "SplitStep",
    "StartAutomationAction",
    "Step",
    "StepBase",
    "TagAction",
    "Wait",
    "WaitStep",
    "WebhookAction",
    "check_graph",
    "dump_json",
    "load_text",
    "parse_definition",
    "parse_duration",
    "step_targets",
    "successors",
]
