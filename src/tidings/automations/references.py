"""What a definition names in the database and the database lacks: tags, lists, custom fields,
templates and automations, each with its path. `validate --check-database`, `automations
create` and the API's POST/PUT report them as warnings (a definition may name what will exist
by the time it runs); missing tags and lists can be created (`create_missing`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.automations import definition as d
from tidings.automations.definition import Definition
from tidings.automations.models import Automation
from tidings.automations.triggers import DateTrigger, FieldTrigger, ListTrigger, TagTrigger
from tidings.contacts.models import CustomField, MailingList, Tag
from tidings.contacts.service import PROFILE_ATTRIBUTES, ensure_lists, ensure_tags
from tidings.deals.models import Pipeline, Stage, User
from tidings.messaging.models import EmailTemplate
from tidings.segments.conditions import And, FieldCondition, ListCondition, Not, Or, TagCondition


def condition_references(condition: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, kind, name) of each tag, list (by name) and custom field a condition names;
    paths as parse_condition names them (`goals[0].when.and[1].has_tag`)."""
    if isinstance(condition, And | Or):
        kind = "and" if isinstance(condition, And) else "or"
        for index, item in enumerate(condition.items):
            yield from condition_references(item, f"{path}.{kind}[{index}]")
    elif isinstance(condition, Not):
        yield from condition_references(condition.item, f"{path}.not")
    elif isinstance(condition, TagCondition):
        key = "has_tag" if condition.present else "lacks_tag"
        yield f"{path}.{key}", "tag", condition.tag
    elif isinstance(condition, ListCondition) and isinstance(condition.list, str):
        yield f"{path}.in_list", "list", condition.list
    elif isinstance(condition, FieldCondition) and condition.custom:
        yield f"{path}.field", "custom field", condition.field


def _conditions(definition: Definition) -> Iterator[tuple[str, Any]]:
    for index, step in enumerate(definition.steps):
        if isinstance(step, d.IfStep):
            yield f"steps[{index}].if", step.if_
        elif isinstance(step, d.WaitStep) and step.wait.condition is not None:
            yield f"steps[{index}].wait.condition", step.wait.condition
    for index, goal in enumerate(definition.goals):
        yield f"goals[{index}].when", goal.when


def reference_problems(session: Session, definition: Definition) -> list[dict[str, str]]:
    """Tags, lists, fields, templates and automations named by the definition that do not
    exist, each with its path. Missing tags and lists that steps or the trigger would create
    are offered for creation (`offer: create`)."""
    known = {
        "tag": set(session.scalars(select(Tag.name))),
        "list": set(session.scalars(select(MailingList.name))),
        "custom field": set(session.scalars(select(CustomField.key))) | set(PROFILE_ATTRIBUTES),
        "template": set(session.scalars(select(EmailTemplate.name))),
        "automation": set(session.scalars(select(Automation.name))) | {definition.name},
    }
    problems: list[dict[str, str]] = []

    def check(path: str, what: str, name: str, offer: bool = False) -> None:
        if name in known[what]:
            return
        problem = {"field": path, "message": f"{what} {name!r} does not exist"}
        if offer:
            problem["offer"] = "create"
        problems.append(problem)

    trigger = definition.trigger
    if isinstance(trigger, TagTrigger):
        check("trigger.tag", "tag", trigger.tag, offer=True)
    elif isinstance(trigger, ListTrigger) and trigger.list is not None:
        check("trigger.list", "list", trigger.list, offer=True)
    elif isinstance(trigger, FieldTrigger | DateTrigger):
        check("trigger.field", "custom field", trigger.field)
    for index, step in enumerate(definition.steps):
        path = f"steps[{index}]"
        if isinstance(step, d.TagAction):
            for name in step.tags:
                check(f"{path}.tag", "tag", name, offer=True)
        elif isinstance(step, d.ListAction):
            check(f"{path}.list", "list", step.list, offer=True)
        elif isinstance(step, d.SetFieldAction):
            check(f"{path}.field", "custom field", step.field)
        elif isinstance(step, d.SendEmailAction):
            check(f"{path}.template", "template", step.template)
        elif isinstance(step, d.StartAutomationAction | d.ExitAutomationAction):
            check(f"{path}.automation", "automation", step.automation)
    for where, condition in _conditions(definition):
        for path, what, name in condition_references(condition, where):
            check(path, what, name)
    problems.extend(_deal_problems(session, definition))
    return problems


def _deal_problems(session: Session, definition: Definition) -> list[dict[str, str]]:
    """Pipelines, stages and users that deal triggers and steps name and that do not exist
    (names compare without regard to case; ids are not looked up)."""
    named = list(deal_references(definition))
    if not named:
        return []
    known = {
        "pipeline": {n.casefold() for n in session.scalars(select(Pipeline.name))},
        "stage": {n.casefold() for n in session.scalars(select(Stage.title))},
        "user": {n.casefold() for n in session.scalars(select(User.email))},
    }
    return [
        {"field": path, "message": f"{what} {name!r} does not exist"}
        for path, what, name in named
        if name.strip().casefold() not in known[what]
    ]


def deal_references(definition: Definition) -> Iterator[tuple[str, str, str]]:
    """(path, pipeline|stage|user, name) of each name a deal trigger or deal step gives."""
    trigger = definition.trigger
    names = {  # what a deal trigger's attributes name
        "deal_entered_pipeline": {"pipeline": "pipeline"},
        "deal_stage_changed": {"pipeline": "pipeline", "from_": "stage", "to": "stage"},
        "deal_owner_changed": {"to": "user"},
    }
    for attribute, what in names.get(getattr(trigger, "type", ""), {}).items():
        yield from _named(trigger, attribute, "trigger", what)
    kinds = {"pipeline": "pipeline", "stage": "stage", "owner": "user", "assignee": "user"}
    for index, step in enumerate(definition.steps):
        if not getattr(step, "action", "").endswith(("_deal", "deal_score", "_task", "_note")):
            continue
        path = f"steps[{index}]"
        for attribute, what in kinds.items():
            yield from _named(step, attribute, path, what)
        owner = getattr(step, "owner", None)
        for ref in getattr(owner, "round_robin", ()):
            if isinstance(ref, str):
                yield f"{path}.owner.round_robin", "user", ref
        selector = getattr(step, "deal", None)
        if selector is not None:
            yield from _named(selector, "pipeline", f"{path}.deal", "pipeline")
            yield from _named(selector, "stage", f"{path}.deal", "stage")


def _named(model: Any, attribute: str, path: str, what: str) -> Iterator[tuple[str, str, str]]:
    value = getattr(model, attribute, None)
    special = {"assignee": "owner", "owner": "round_robin"}.get(attribute)
    if isinstance(value, str) and value != special:
        yield f"{path}.{attribute.rstrip('_')}", what, value


def create_missing(session: Session, problems: list[dict[str, str]], *, now: datetime) -> None:
    """Create the tags and lists that `reference_problems` offered to create."""
    names: dict[str, list[str]] = {"tag": [], "list": []}
    for problem in problems:
        if problem.get("offer") == "create":
            kind = problem["field"].rsplit(".", 1)[-1]
            names[kind].append(problem["message"].split("'")[1])
    ensure_tags(session, names["tag"], now)
    ensure_lists(session, names["list"], now)
