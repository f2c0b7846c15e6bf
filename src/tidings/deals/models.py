"""The deals package's tables. Only tidings.deals writes them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.types import BigIntPK, JSONType, UTCDateTime


class User(Base):
    """Someone who owns deals and is assigned tasks (the web admin adds logins on top)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Normalised like contact addresses (trimmed, lower-cased, syntax-checked).
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | member
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Set by the web admin's login feature; nothing in this package reads or writes it.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217; new deals default to it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Stage(Base):
    __tablename__ = "stages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(200))
    colour: Mapped[str] = mapped_column(String(7))  # #rrggbb
    probability: Mapped[int] = mapped_column(Integer)  # win probability, percent
    position: Mapped[int] = mapped_column(Integer)  # 0, 1, 2 ... within the pipeline
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # One title per pipeline, so CSV files can name a stage by its title.
    __table_args__ = (UniqueConstraint("pipeline_id", "title"),)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    value: Mapped[int] = mapped_column(BigInteger)  # minor units (cents): exact sums
    currency: Mapped[str] = mapped_column(String(3))
    # The primary contact (also a row of deal_contacts). A deal outlives a deleted contact:
    # the database sets this to NULL and removes the deal_contacts row.
    contact_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="SET NULL")
    )
    owner_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    pipeline_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("pipelines.id"))
    stage_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("stages.id"))
    status: Mapped[str] = mapped_column(String(8))  # open | won | lost
    # Card order on the board within a stage (ascending, then id): a deal entering a stage
    # gets its entry time in microseconds, so cards line up in arrival order until a client
    # writes positions of its own.
    position: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    expected_close: Mapped[date | None] = mapped_column(Date)
    # Values of deal fields, keyed by the field's key, coerced to the field's type.
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    score: Mapped[int] = mapped_column(Integer, default=0)  # written by deals.scoring only
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The board and the forecast, from the index alone: a stage's cards in order (a range
        # of it), per-stage counts and sums (one pass grouped by stage, in index order), and
        # the open deals' values by expected close date.
        Index(
            "ix_deals_board",
            "pipeline_id",
            "status",
            "stage_id",
            "position",
            "id",
            "currency",
            "value",
            "expected_close",
        ),
        # The board filtered by owner, the same way: counts and sums per stage, a stage's cards.
        Index(
            "ix_deals_board_owner",
            "pipeline_id",
            "status",
            "owner_id",
            "stage_id",
            "position",
            "id",
            "currency",
            "value",
        ),
        Index("ix_deals_contact_id", "contact_id"),
        Index("ix_deals_owner_id_status", "owner_id", "status"),
        Index("ix_deals_closed_at", "closed_at"),
        Index("ix_deals_updated_at", "updated_at"),
    )


class StageTotal(Base):
    """How many deals, worth how much, are in a stage with a status, currency and expected
    close month: what the board shows per stage and the forecast per month, kept by every deal
    write (deals.totals) so the board and the forecast read a few rows, not every deal of the
    pipeline. `deals.totals.rebuild` recounts it."""

    __tablename__ = "deal_stage_totals"

    pipeline_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stage_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(8), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    # 'YYYY-MM' of the deals' expected close date ('' for none): the forecast reads its
    # monthly sums from here.
    close_month: Mapped[str] = mapped_column(String(7), primary_key=True)
    deals: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger)


class DealContact(Base):
    """Every contact of a deal, the primary one included."""

    __tablename__ = "deal_contacts"

    deal_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deal_contacts_contact_id_deal_id", "contact_id", "deal_id"),)


class DealField(Base):
    """A typed custom deal field (the types of contact fields)."""

    __tablename__ = "deal_fields"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    options: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StageVisit(Base):
    """A deal's stay in a stage (left_at NULL while it is there): the funnel and the time in
    stage are read from here, written beside every deal_created / deal_stage_changed activity.
    No foreign keys: history outlives a deleted stage, and deals.service deletes a deal's rows."""

    __tablename__ = "deal_stage_visits"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger)
    pipeline_id: Mapped[int] = mapped_column(BigInteger)
    stage_id: Mapped[int] = mapped_column(BigInteger)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_deal_stage_visits_deal_id_left_at", "deal_id", "left_at"),
        # A pipeline's funnel from the index alone, in deal order. Without left_at: a move
        # sets it on thousands of visits, which would move their entries here too.
        Index("ix_deal_stage_visits_pipeline", "pipeline_id", "deal_id", "stage_id", "entered_at"),
    )


class StageReach(Base):
    """Per deal and pipeline: when it first entered the pipeline and the furthest stage (in
    the current stage order) it has reached there. Kept beside the stage visits by every
    create and move, rebuilt for a pipeline when its stage order changes, so the funnel
    counts index entries per stage instead of grouping every visit by deal."""

    __tablename__ = "deal_stage_reach"

    pipeline_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    furthest_stage_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_deal_stage_reach_funnel", "pipeline_id", "furthest_stage_id", "entered_at"),
    )


class TaskType(Base):
    """A user-defined task type; the built-in ones (call, email, meeting, to-do) need no row."""

    __tablename__ = "task_types"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class _OnDealOrContact:
    """A task or note is on a deal or on a contact: exactly one of the two is set (a check
    constraint in each table), and it goes when that deal or contact is deleted."""

    deal_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("deals.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE")
    )


ON_DEAL_OR_CONTACT = "(deal_id IS NULL) <> (contact_id IS NULL)"


class Task(_OnDealOrContact, Base):
    """A task on a deal or on a contact (exactly one of them)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    type: Mapped[str] = mapped_column(String(64))  # a task type's name
    title: Mapped[str] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(ON_DEAL_OR_CONTACT, name="on_deal_or_contact"),
        # A user's open tasks by due time (the overdue list).
        Index("ix_tasks_assignee_id_done_at_due_at", "assignee_id", "done_at", "due_at"),
        Index("ix_tasks_deal_id", "deal_id"),
        Index("ix_tasks_contact_id", "contact_id"),
        Index("ix_tasks_type", "type"),
    )


class Note(_OnDealOrContact, Base):
    """A note on a deal or on a contact (exactly one of them)."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(ON_DEAL_OR_CONTACT, name="on_deal_or_contact"),
        Index("ix_notes_deal_id", "deal_id"),
        Index("ix_notes_contact_id", "contact_id"),
    )


class ScoringRule(Base):
    """Points a deal earns while `condition` holds for it (see deals.scoring)."""

    __tablename__ = "deal_scoring_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    condition: Mapped[Any] = mapped_column(JSONType)
    points: Mapped[int] = mapped_column(Integer)
    # The points of a match count for this many days after the condition was first met.
    expires_after_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScoreMatch(Base):
    """A rule's condition holds (or held until the last refresh) for a deal.

    `points` are what this match has added to deals.score, so a deal's score is always the
    sum of its matches' points plus any direct adjustments, and every refresh moves scores by
    differences only. No foreign keys: hundreds of thousands are written at once, and
    deals.service / deals.scoring delete a deal's and a rule's rows themselves."""

    __tablename__ = "deal_score_matches"

    rule_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    holds: Mapped[bool] = mapped_column(Boolean)
    points: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_deal_score_matches_deal_id", "deal_id"),
        # Expiry finds a rule's matches that ran out by their start time.
        Index("ix_deal_score_matches_rule_id_matched_at", "rule_id", "matched_at"),
    )


class DealEmail(Base):
    """A 1:1 email written from a deal to one of its contacts, sent as the deal's owner
    through the outbox (message class `personal`). Its outbox row's token is the unique part
    of its Message-ID and of its reply address, which is how replies find it (deals.emails)."""

    __tablename__ = "deal_emails"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("deals.id", ondelete="CASCADE"))
    # No foreign keys to the contact or the outbox: the record of what was written outlives
    # both (as the outbox outlives contacts).
    contact_id: Mapped[int] = mapped_column(BigInteger)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    outbox_id: Mapped[int] = mapped_column(BigInteger)
    message_token: Mapped[str] = mapped_column(String(64), unique=True)
    to_email: Mapped[str] = mapped_column(String(320))
    from_address: Mapped[str] = mapped_column(String(600))  # "Name <owner@example.com>"
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # "Automate this email": an automation the contact enters when the email is sent or when
    # the contact replies (automate_on: sent | replied).
    automation_id: Mapped[int | None] = mapped_column(BigInteger)
    automate_on: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deal_emails_deal_id_id", "deal_id", "id"),)


class DealEmailReply(Base):
    """A reply to a deal email, as it reached `tidings inbound` or the bounce webhook. The
    reply's own Message-ID makes a second delivery of the same reply a no-op."""

    __tablename__ = "deal_email_replies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    deal_email_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deal_emails.id", ondelete="CASCADE")
    )
    deal_id: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str] = mapped_column(String(600))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(998))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("deal_email_id", "message_id"),
        Index("ix_deal_email_replies_deal_id", "deal_id"),
    )
