"""`kind: system` definitions: triggers, job steps, and what each kind refuses, by path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.automations.definition import load_text, parse_definition
from tidings.automations.definition.system_steps import JobIfStep, JobStep, ScheduleTrigger
from tidings.errors import ValidationFailed
from tidings.system.schedule import latest_tick, next_tick

NIGHTLY = """
kind: system
name: Nightly export
trigger: {type: schedule, cron: "0 6 * * MON", timezone: Europe/Berlin}
steps:
  - {id: export, job: {kind: export, export: {type: contacts}}}
  - {id: ok, if: {status: succeeded, min_written: 1}, then: tell, else: alarm}
  - {id: tell, action: notify, to: ops@example.com, subject: Export ready, next: end}
  - {id: alarm, action: notify, to: ops@example.com, subject: Export failed}
"""


def _fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.value.errors or []}


def test_a_system_definition_parses_with_job_steps_and_a_job_if() -> None:
    definition = load_text(NIGHTLY)
    assert definition.kind == "system"
    assert isinstance(definition.trigger, ScheduleTrigger)
    assert isinstance(definition.steps[0], JobStep)
    assert isinstance(definition.steps[1], JobIfStep)
    again = parse_definition(definition.to_json())  # stored JSON parses back the same
    assert again == definition


def test_a_contact_action_in_a_system_automation_is_refused_with_its_path() -> None:
    text = NIGHTLY.replace(
        "action: notify, to: ops@example.com, subject: Export failed", "action: add_tag, tag: x"
    )
    with pytest.raises(ValidationFailed) as exc:
        load_text(text)
    assert "steps[3].action" in _fields(exc)


def test_a_job_step_or_system_trigger_in_a_contact_automation_is_refused() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_definition(
            {
                "name": "x",
                "trigger": {"type": "job_finished"},
                "steps": [{"id": "a", "job": {"kind": "export", "export": {"type": "contacts"}}}],
            }
        )
    fields = _fields(exc)
    assert "trigger.type" in fields and "steps[0].job" in fields


def test_a_bad_cron_line_and_a_bad_time_zone_name_their_fields() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_definition(
            {
                "kind": "system",
                "name": "x",
                "trigger": {"type": "schedule", "cron": "61 * * *", "timezone": "Mars/Base"},
                "steps": [{"id": "a", "action": "notify", "to": "a@b.c", "subject": "s"}],
            }
        )
    fields = _fields(exc)
    assert (
        "trigger.schedule.cron" in fields
        or "trigger.cron" in fields
        or any("cron" in f for f in fields)
    )


def test_cron_ticks_keep_local_time_across_dst() -> None:
    trigger = ScheduleTrigger(type="schedule", cron="0 6 * * MON", timezone="Europe/Berlin")
    # 2026-03-29 is the spring-forward Sunday in Berlin: 06:00 is 05:00 UTC before, 04:00 after.
    before = next_tick(trigger, datetime(2026, 3, 20, tzinfo=UTC))
    after = next_tick(trigger, datetime(2026, 3, 27, tzinfo=UTC))
    assert before == datetime(2026, 3, 23, 5, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 30, 4, 0, tzinfo=UTC)
    assert latest_tick(trigger, after) == after


def test_every_n_minutes_ticks_on_the_epoch_grid() -> None:
    trigger = ScheduleTrigger(type="schedule", every=15)
    assert latest_tick(trigger, datetime(2026, 1, 1, 10, 14, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 0, tzinfo=UTC
    )
