"""The engagement-tagging template (SPEC E3): two ordinary, editable automations.

Part 1 (no start trigger; optionally: joining a list) tags a contact as it interacts less:
Engaged + Recent activity -> (7 days) Recent activity removed -> (21 days) Disengaged instead
of Engaged -> (30 days) Inactive instead of Disengaged; then it ends.
Part 2 (any open, click, purchase or site visit; machine opens excluded) takes the contact
out of Part 1 and starts it there again, so its clock restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.automations.models import Automation
from tidings.automations.service import create_automation, enrol_contacts
from tidings.automations.triggers import ENGAGEMENT_EVENTS
from tidings.contacts.policy import ContactStatus
from tidings.errors import ValidationFailed

PART1 = "Engagement tagging"
PART2 = "Engagement tagging: re-engagement"
ENGAGED, RECENT, DISENGAGED, INACTIVE = "Engaged", "Recent activity", "Disengaged", "Inactive"


@dataclass(frozen=True, slots=True)
class EngagementPeriods:
    """Days after the last interaction (or activation) at which each tag changes."""

    recent_days: float = 7
    disengaged_days: float = 21
    inactive_days: float = 30

    def check(self) -> None:
        if not 0 < self.recent_days <= self.disengaged_days < self.inactive_days:
            raise ValidationFailed(
                "periods: need 0 < recent_days <= disengaged_days < inactive_days"
            )


def engagement_definitions(
    periods: EngagementPeriods = EngagementPeriods(),
    *,
    join_list: str | None = None,
    part1: str = PART1,
    part2: str = PART2,
) -> tuple[dict[str, Any], dict[str, Any]]:
    periods.check()
    every_status = [s.value for s in ContactStatus]
    first: dict[str, Any] = {
        "name": part1,
        "description": "Tags contacts by how recently they interacted (SPEC E3, part 1).",
        "runs": "multiple",
        "allow_statuses": every_status,
        "steps": [
            {"id": "engaged", "action": "add_tag", "tag": [ENGAGED, RECENT]},
            {"id": "clear", "action": "remove_tag", "tag": [DISENGAGED, INACTIVE]},
            {"id": "wait_recent", "wait": {"after_entry": {"days": periods.recent_days}}},
            {"id": "not_recent", "action": "remove_tag", "tag": RECENT},
            {"id": "wait_disengaged", "wait": {"after_entry": {"days": periods.disengaged_days}}},
            {"id": "disengaged", "action": "add_tag", "tag": DISENGAGED},
            {"id": "not_engaged", "action": "remove_tag", "tag": ENGAGED},
            {"id": "wait_inactive", "wait": {"after_entry": {"days": periods.inactive_days}}},
            {"id": "inactive", "action": "add_tag", "tag": INACTIVE},
            {"id": "not_disengaged", "action": "remove_tag", "tag": DISENGAGED},
            {"id": "done", "end": True},
        ],
    }
    if join_list:
        first["trigger"] = {"type": "list_subscribed", "list": join_list}
    second: dict[str, Any] = {
        "name": part2,
        "description": "Restarts part 1 when a contact interacts again (SPEC E3, part 2).",
        "trigger": {"type": "event", "event": list(ENGAGEMENT_EVENTS)},
        "runs": "multiple",
        "allow_statuses": every_status,
        "steps": [
            {"id": "leave", "action": "exit_automation", "automation": part1},
            {"id": "restart", "action": "start_automation", "automation": part1},
        ],
    }
    return first, second


def install_engagement_tagging(
    session: Session,
    *,
    now: datetime,
    periods: EngagementPeriods = EngagementPeriods(),
    list_name: str | None = None,
    segment: Any = None,
    join_list: str | None = None,
) -> tuple[Automation, Automation, int]:
    """Create both parts and enrol every contact (or the list/segment) with ONE insert."""
    first, second = engagement_definitions(periods, join_list=join_list)
    part1 = create_automation(session, first, now=now)
    part2 = create_automation(session, second, now=now)
    if list_name is not None:
        enrolled = enrol_contacts(session, part1, now=now, list_name=list_name)
    elif segment is not None:
        enrolled = enrol_contacts(session, part1, now=now, segment=segment)
    else:
        enrolled = enrol_contacts(session, part1, now=now, everyone=True)
    return part1, part2, enrolled


__all__ = ["ENGAGEMENT_EVENTS", "EngagementPeriods", "engagement_definitions"]
