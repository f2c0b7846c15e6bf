"""The engagement-tagging template (SPEC E3): two ordinary, editable automations.

Part 1 (no start trigger; optionally: joining a list) tags a contact as it interacts less:
Engaged + Recent activity -> (7 days) Recent activity removed -> (21 days) Disengaged instead
of Engaged -> (30 days) Inactive instead of Disengaged; then it ends.
Part 2 (any open, click, purchase or site visit; machine opens excluded) takes the contact
out of Part 1 and starts it there again, so its clock restarts.

Installed over existing contacts, Part 1 is seeded from each contact's history: its last
engagement decides its tags and the wait its run stands in, so a contact that has not
engaged for 40 days is `Inactive` on day one (`seed_from_history`; `all_engaged` instead
starts everyone as engaged now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select, true
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.automations.enrolments import COMPLETED, Placed, place
from tidings.automations.models import Automation
from tidings.automations.registry import Loaded
from tidings.automations.service import create_automation, enrol_contacts, loaded, selection
from tidings.automations.triggers import ENGAGEMENT_EVENTS
from tidings.contacts import repository as contacts_repository
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.contacts.policy import ContactStatus
from tidings.db.types import UTCDateTime, timestamp_plus
from tidings.errors import ValidationFailed

CAUSE = Cause.AUTOMATION.value
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
    all_engaged: bool = False,
) -> tuple[Automation, Automation, int]:
    """Create both parts and enrol every contact (or the list/segment) in part 1, each
    seeded from its history (`seed_from_history`); `all_engaged`: everyone starts as engaged
    now, whatever its history (one INSERT ... SELECT at part 1's first step)."""
    first, second = engagement_definitions(periods, join_list=join_list)
    part1 = create_automation(session, first, now=now)
    part2 = create_automation(session, second, now=now)
    if all_engaged:
        if list_name is not None:
            enrolled = enrol_contacts(session, part1, now=now, list_name=list_name)
        elif segment is not None:
            enrolled = enrol_contacts(session, part1, now=now, segment=segment)
        else:
            enrolled = enrol_contacts(session, part1, now=now, everyone=True)
        return part1, part2, enrolled
    chosen = selection(session, now=now, list_name=list_name, segment=segment)
    enrolled = seed_from_history(
        session,
        loaded(session, part1),
        periods,
        now=now,
        where=true() if chosen is None else chosen,
    )
    return part1, part2, enrolled


def last_engagement(now: datetime) -> ColumnElement[Any]:
    """SQL: when a contact last engaged (its engagement summary's `last_engaged_at`: opens,
    clicks, purchases and visits by people), or, if it never did, when it was created: a
    contact that never engaged is as inactive as its age. Never later than `now`."""
    last = func.coalesce(Contact.last_engaged_at, Contact.created_at)
    at = literal(now, UTCDateTime())
    return case((last > at, at), else_=last)


@dataclass(frozen=True, slots=True)
class _Phase:
    """The contacts whose last engagement lies in (now - older, now - newer]: their tags, and
    the step of part 1 their run waits in (or ends at), with the wait's days."""

    newer: float | None  # days; None: no bound (the future is clamped to now)
    older: float | None
    tags: tuple[str, ...]
    step: str
    wait_days: float | None  # None: the run ended (Inactive)


def _phases(periods: EngagementPeriods) -> list[_Phase]:
    recent, disengaged, inactive = (
        periods.recent_days,
        periods.disengaged_days,
        periods.inactive_days,
    )
    return [
        _Phase(None, recent, (ENGAGED, RECENT), "wait_recent", recent),
        _Phase(recent, disengaged, (ENGAGED,), "wait_disengaged", disengaged),
        _Phase(disengaged, inactive, (DISENGAGED,), "wait_inactive", inactive),
        _Phase(inactive, None, (INACTIVE,), "done", None),
    ]


def seed_from_history(
    session: Session,
    part1: Loaded,
    periods: EngagementPeriods,
    *,
    now: datetime,
    where: ColumnElement[bool],
) -> int:
    """Enrol the contacts matching `where` in part 1 as if it had always run: each contact's
    last engagement (`last_engagement`) is its run's entry time, so its tags and the wait its
    run stands in are those part 1 gives that long after an interaction. Someone who last
    engaged 10 days ago gets `Engaged` and waits for day 21 of its run; 40 days ago,
    `Inactive`, and its run has ended (part 2 starts it again at the next interaction).

    Set-based, per phase (recent, engaged, disengaged, inactive): one INSERT ... SELECT of
    the runs, one statement per tag added and per tag removed (the other three of part 1's
    four tags, so stale tags go), whatever the number of contacts. The tag changes write
    their activity rows like part 1's steps, so they start other automations the same way.
    Returns how many were enrolled.
    """
    last = last_engagement(now)
    ours = (ENGAGED, RECENT, DISENGAGED, INACTIVE)
    existing = contacts_repository.tag_ids(session, list(ours))
    enrolled = 0
    for phase in _phases(periods):
        bounds: list[ColumnElement[bool]] = [where]
        if phase.newer is not None:
            bounds.append(last <= now - timedelta(days=phase.newer))
        if phase.older is not None:
            bounds.append(last > now - timedelta(days=phase.older))
        if phase.wait_days is None:
            placed = Placed(phase.step, last, None, COMPLETED)
        else:
            # Woken at the wait's end, to the second (never after it): the run then works
            # out the exact deadline from its entry time, as any after_entry wait does.
            seconds = int(timedelta(days=phase.wait_days).total_seconds())
            placed = Placed(phase.step, last, timestamp_plus(last, literal(seconds)))
        inside = and_(*bounds)
        count = place(session, part1, placed, now=now, where=inside)
        enrolled += count
        if not count:
            continue
        members = select(Contact.id).where(inside, Contact.status.in_(sorted(part1.allowed)))
        gone = {
            name: existing[name] for name in ours if name in existing and name not in phase.tags
        }
        contacts.remove_tags(session, members, gone, cause=CAUSE, now=now)
        contacts.add_tags(
            session,
            members,
            contacts.ensure_tags(session, list(phase.tags), now),
            cause=CAUSE,
            now=now,
        )
    return enrolled


__all__ = [
    "ENGAGEMENT_EVENTS",
    "EngagementPeriods",
    "engagement_definitions",
    "install_engagement_tagging",
    "last_engagement",
    "seed_from_history",
]
