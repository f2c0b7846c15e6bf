"""`tidings automations simulate`: run an automation on a COPY of the data with a fake clock.

The live database is never opened for writing: a SQLite file given with --database is copied
to a temporary directory first; without it, a fresh database is made and filled from the
scenario. The automation runs in the live engine, send path included: its emails are queued
through the outbox's one writer into the copy's outbox (which no sender reads), and the report
reads back what the writer decided, queued or refused with its reason. So the simulation
refuses exactly what a real run would (a missing template, a contact's status, suppression),
and cannot drift from it. A scenario (YAML) scripts templates, contacts and events by day:

    templates: [welcome]         # created in the copy: names, or {name, subject, html, text}
    contacts: 200                # or a list of {email, tags: [...], lists: [...]}
    enrol: all                   # no trigger: all | {list: X} | {segment: {...}}
    events:
      - {day: 1, type: email_opened, percent: 30}       # 30% of contacts, chosen by a seeded rng
      - {day: 3, type: purchase, amount: 20, contacts: [a@example.com]}
      - {day: 5, tag: VIP, percent: 10}                 # contact changes work too

Deals too (tidings.automations.simulate_deals): `pipelines` and `users` to create, and deal
events (add_deal, move_deal, deal_status) by day, so deal triggers and actions run.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.automations.definition import parse_definition
from tidings.automations.engine import Engine
from tidings.automations.models import Automation
from tidings.automations.service import (
    create_automation,
    enrol_contacts,
    enrolment_totals,
    update_automation,
    waiting_by_step,
)
from tidings.automations.simulate_deals import DEAL_EVENTS, apply_deal_event, deal_lines, seed_crm
from tidings.clock import FakeClock, SystemClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.errors import ValidationFailed
from tidings.events.service import ingest_events
from tidings.messaging.outbox import OutboxStatus, outcomes
from tidings.messaging.service import create_template


@dataclass(frozen=True)
class SimulatedDay:
    """Where the runs are at the end of one day, and what the outbox writer decided that day."""

    day: int
    waiting: dict[str, int]  # per step id
    completed: int
    exited: int
    queued: dict[str, int]  # per template
    refused: int


@dataclass
class Simulation:
    """A simulation's result: the step ids, one row per day, refusals by (template, reason)."""

    steps: list[str]
    days: list[SimulatedDay] = field(default_factory=list)
    refused: Counter[tuple[str | None, str]] = field(default_factory=Counter)
    deal_lines: list[str] = field(default_factory=list)


def run_simulation(
    data: dict[str, Any],
    *,
    days: int,
    database_file: Path | None = None,
    scenario: dict[str, Any] | None = None,
    seed: int = 1,
) -> str:
    """The simulation as the CLI prints it: a line per day, then the refusals."""
    result = simulate(data, days=days, database_file=database_file, scenario=scenario, seed=seed)
    lines = [_header(result.steps), *(_day_line(result.steps, row) for row in result.days)]
    return "\n".join([*lines, *result.deal_lines, *_refusals(result.refused)])


def simulate(
    data: dict[str, Any],
    *,
    days: int,
    database_file: Path | None = None,
    scenario: dict[str, Any] | None = None,
    seed: int = 1,
) -> Simulation:
    """Run the automation on a copy (or a fresh database) for `days` simulated days."""
    definition = parse_definition(data)
    scenario = scenario or {}
    with tempfile.TemporaryDirectory(prefix="tidings-simulate-") as tmp:
        path = Path(tmp) / "copy.db"
        if database_file is not None:
            shutil.copy(database_file, path)
            for suffix in ("-wal", "-shm"):
                side = Path(str(database_file) + suffix)
                if side.exists():
                    shutil.copy(side, Path(str(path) + suffix))
        database = create_database(f"sqlite:///{path}")
        try:
            upgrade(database)
            start = SystemClock().now().replace(hour=0, minute=0, second=0, microsecond=0)
            clock = FakeClock(start)
            engine = Engine(database, clock)  # the live engine and its send path
            rng = random.Random(seed)
            with database.session() as session:
                _seed_templates(session, scenario.get("templates"), clock.now())
                _seed_contacts(session, scenario.get("contacts"), clock.now())
                seed_crm(session, scenario, clock.now())
                automation = _install(session, data, definition.name, clock.now())
                if definition.trigger is None or definition.trigger.type == "none":
                    _enrol(session, automation, scenario.get("enrol", "all"), clock.now())
            engine.run_until_idle()
            result = Simulation(steps=[s.id for s in definition.steps])
            for day in range(days):
                clock.set(start + timedelta(days=day, hours=12))
                _apply_events(database, clock, scenario.get("events", []), day, rng)
                engine.run_until_idle()
                clock.set(start + timedelta(days=day + 1))
                engine.run_until_idle()
                result.days.append(
                    _day_counts(database, automation.id, day + 1, start, result.refused)
                )
            with database.session() as session:
                result.deal_lines = deal_lines(session)
            return result
        finally:
            database.dispose()


def _seed_templates(session: Session, spec: Any, now: datetime) -> None:
    if spec is None:
        return
    if not isinstance(spec, list):
        raise ValidationFailed("scenario.templates: a list of template names or objects")
    for index, item in enumerate(spec):
        given = {"name": item} if isinstance(item, str) else item
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise ValidationFailed(
                f"scenario.templates[{index}]: a name or {{name, subject, html}}"
            )
        name = given["name"]
        create_template(
            session,
            name=name,
            subject=str(given.get("subject", name)),
            html=str(given.get("html", f"<p>{name}</p>")),
            text=given.get("text"),
            variables={},
            track_opens=True,
            track_clicks=True,
            now=now,
        )


def _seed_contacts(session: Session, spec: Any, now: datetime) -> None:
    if spec is None:
        return
    if isinstance(spec, int):
        spec = [{"email": f"sim{i}@example.com"} for i in range(spec)]
    if not isinstance(spec, list):
        raise ValidationFailed("scenario.contacts: a number or a list of contacts")
    items = [
        contacts.ContactInput(
            email=c.get("email"),
            status=c.get("status"),
            tags=list(c.get("tags", [])),
            lists=list(c.get("lists", [])),
        )
        for c in spec
    ]
    report = contacts.upsert_contacts(session, items, now=now, cause="import")
    if report.rejected:
        first = report.rejected[0]
        raise ValidationFailed(f"scenario.contacts[{first.index}]: {first.reason}")


def _install(session: Session, data: dict[str, Any], name: str, now: datetime) -> Automation:
    existing = session.scalar(select(Automation).where(Automation.name == name))
    if existing is not None:  # simulating an edit of an automation in the copied database
        return update_automation(session, existing, data, now=now)
    return create_automation(session, data, now=now)


def _enrol(session: Session, automation: Automation, spec: Any, now: datetime) -> None:
    if spec == "all":
        enrol_contacts(session, automation, now=now, everyone=True)
    elif isinstance(spec, dict) and "list" in spec:
        enrol_contacts(session, automation, now=now, list_name=spec["list"])
    elif isinstance(spec, dict) and "segment" in spec:
        enrol_contacts(session, automation, now=now, segment=spec["segment"])
    else:
        raise ValidationFailed("scenario.enrol: all, {list: NAME} or {segment: CONDITION}")


def _apply_events(
    database: Any, clock: FakeClock, events: list[dict[str, Any]], day: int, rng: random.Random
) -> None:
    todays = [e for e in events if e.get("day") == day + 1]
    if not todays:
        return
    now = clock.now()
    with database.session() as session:
        everyone = list(session.execute(select(Contact.id, Contact.email)).all())
        for index, spec in enumerate(todays):
            chosen = _choose(everyone, spec, rng)
            if any(kind in spec for kind in DEAL_EVENTS):
                apply_deal_event(session, spec, chosen, now, f"scenario.events[{index}]")
                continue
            if "tag" in spec:
                for contact in session.scalars(select(Contact).where(Contact.id.in_(chosen))):
                    contacts.add_tag(session, contact, spec["tag"], now=now, cause="api")
                continue
            raw = {k: v for k, v in spec.items() if k not in ("day", "percent", "contacts")}
            report = ingest_events(
                session, [{**raw, "contact_id": cid} for cid in chosen], now=now, cause="api"
            )
            if report.rejected:
                raise ValidationFailed(f"scenario.events[{index}]: {report.rejected[0].reason}")


def _choose(everyone: list[Any], spec: dict[str, Any], rng: random.Random) -> list[int]:
    if "contacts" in spec:
        wanted = {str(e).lower() for e in spec["contacts"]}
        return [cid for cid, email in everyone if email in wanted]
    percent = float(spec.get("percent", 100))
    return [cid for cid, _ in everyone if rng.random() * 100 < percent]


def _header(steps: list[str]) -> str:
    cells = " ".join(f"{s:>12}" for s in steps)
    return f"{'day':>4} {cells} {'completed':>10} {'exited':>7}  sent (refused)"


def _day_counts(
    database: Any,
    automation_id: int,
    day: int,
    start: datetime,
    refused: Counter[tuple[str | None, str]],
) -> SimulatedDay:
    """Where the runs are at the end of `day`, and what the outbox writer decided for the
    automation's emails that day (queued per template, refused counted by reason)."""
    with database.session() as session:
        waiting = waiting_by_step(session, automation_id)
        ended = enrolment_totals(session, automation_id)
        written = outcomes(
            session,
            key_prefix=f"automation:{automation_id}:",
            # The day's runs: at noon and at the midnight that ends it (where the waiting
            # counts are taken); day 1 also has the first run, at the start.
            created_from=start + timedelta(days=day - 1, microseconds=1 if day > 1 else 0),
            created_to=start + timedelta(days=day, microseconds=1),
        )
    queued: Counter[str] = Counter()
    refused_today = 0
    for outcome in written:
        if outcome.status == OutboxStatus.REFUSED:
            refused[(outcome.template, outcome.reason or "")] += outcome.messages
            refused_today += outcome.messages
        else:
            queued[outcome.template or ""] += outcome.messages
    return SimulatedDay(
        day=day,
        waiting={step: n for step, n in waiting.items() if step is not None},
        completed=ended.get("completed", 0),
        exited=ended.get("exited", 0),
        queued=dict(queued),
        refused=refused_today,
    )


def _day_line(steps: list[str], row: SimulatedDay) -> str:
    cells = " ".join(f"{row.waiting.get(s, 0):>12}" for s in steps)
    sent = ", ".join(f"{t}: {n}" for t, n in sorted(row.queued.items())) or "-"
    return f"{row.day:>4} {cells} {row.completed:>10} {row.exited:>7}  {sent} ({row.refused})"


def _refusals(refused: Counter[tuple[str | None, str]]) -> list[str]:
    """The refusals of the whole simulation by reason (a template that does not exist names
    itself in its reason)."""
    if not refused:
        return []
    lines = ["", "refused (not sent):"]
    for (template, reason), count in sorted(refused.items(), key=lambda item: -item[1]):
        lines.append(f"{count:>8}  {template + ': ' if template else ''}{reason}")
    return lines


__all__ = ["UTC", "SimulatedDay", "Simulation", "run_simulation", "simulate"]
