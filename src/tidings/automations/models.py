"""Automations, their versions, enrolments (the queue), the step log and the effect outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime

ACTIVE_ONLY: dict[str, Any] = {
    "sqlite_where": text("state = 'active'"),
    "postgresql_where": text("state = 'active'"),
}


class Automation(Base):
    __tablename__ = "automations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # active: triggers enrol and enrolments run; paused: nothing runs (enrolments keep waiting).
    status: Mapped[str] = mapped_column(String(20))
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AutomationVersion(Base):
    __tablename__ = "automation_versions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    automation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("automations.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("automation_id", "version"),)


class Enrolment(Base):
    """One contact's run through one automation version: the durable queue row.

    The worker claims due rows (wake_at <= now) and advances them in ONE transaction together
    with every effect of the steps it runs, so a crash rolls both back: nothing lost, nothing
    doubled. `run_slot` with the unique (automation, contact, slot) index enforces "runs
    once" (slot `once`, kept forever) and "one active run" for runs multiple (slot `active`,
    cleared when the run ends).
    """

    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # No foreign keys: checking them costs half the time of a million-row bulk enrolment on
    # PostgreSQL. A deleted contact's enrolment is ended by the worker ("contact deleted");
    # deleting an automation deletes its enrolments (service.delete_automation).
    automation_id: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(BigInteger)
    # active (running or waiting) | completed | exited | failed
    state: Mapped[str] = mapped_column(String(20))
    step: Mapped[str | None] = mapped_column(String(100))
    # When the worker should look at this row next (None: never, the run is over).
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The deadline of the wait the contact is in (None: the current step has not started).
    wait_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Step executions so far: part of effect idempotency keys (a loop revisits a step).
    hops: Mapped[int] = mapped_column(Integer, default=0)
    goals_hit: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # once | active | None; a run started by a deal trigger: o:<deal> | a:<deal> (per deal)
    run_slot: Mapped[str | None] = mapped_column(String(24))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(Text)
    # The deal a deal trigger started the run for ("the triggered deal"), or one its add_deal
    # step created; deal actions and conditions act on it. No foreign key, as contact_id.
    deal_id: Mapped[int | None] = mapped_column(BigInteger)

    # The two indexes the engine works through hold only active runs (partial indexes): ended
    # runs, the bulk of the table over time, cost them nothing, and ending a run only
    # removes entries. Queries say `state = 'active'` as a literal (enrolments.is_active())
    # for PostgreSQL's prepared statements to use them.
    __table_args__ = (
        Index("ix_enrolments_due", "wake_at", "id", **ACTIVE_ONLY),  # the claim's order
        Index("ix_enrolments_waiting", "automation_id", "step", **ACTIVE_ONLY),
        # The run-once / one-active rule, an automation's enrolments and (with the list of
        # automation ids in front, see service.contact_automations) a contact's: one index for
        # all three, so a new or ended run writes one entry where it would write three.
        Index(
            "uq_enrolments_automation_id_contact_id_run_slot",
            "automation_id",
            "contact_id",
            "run_slot",
            unique=True,
        ),
    )


class StepLog(Base):
    """What one enrolment went through in one transaction of the engine: its steps in order,
    each [step, outcome, detail], all at `at` (outcome: passed | failed | refused | timed_out |
    goal). One row per enrolment and batch, not per step: a run passes several steps at once
    (and the engine writes a fraction of the rows). The history of a contact's enrolment; its
    end when exited or failed is on the enrolment row itself (step, ended_at, end_reason), so
    ending a waiting run writes no row here. The per-step totals are in StepCount."""

    __tablename__ = "automation_step_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(BigInteger)
    automation_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    steps: Mapped[list[list[str | None]]] = mapped_column(JSONType)

    __table_args__ = (Index("ix_automation_step_log_enrolment_id", "enrolment_id"),)


class StepCount(Base):
    """How many runs had each outcome at each step (the report's passed/failed/... counts),
    added to by every batch. Each worker adds to its own shard of a (step, outcome): with one
    row, PostgreSQL workers committing at the same time would wait for each other's lock."""

    __tablename__ = "automation_step_counts"

    automation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step: Mapped[str] = mapped_column(String(100), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class EngineState(Base):
    """Small named values the engine keeps across restarts (the activity cursor)."""

    __tablename__ = "automation_engine_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Effect(Base):
    """An outbound effect (webhook call, internal notification), sent after commit with retries."""

    __tablename__ = "automation_effects"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # webhook | notify
    enrolment_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    target: Mapped[str] = mapped_column(Text)  # URL or email address
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # pending | sent | failed (gave up) | refused (SSRF rule)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_automation_effects_status_next_attempt_at", "status", "next_attempt_at"),
    )
