"""A small CRM for the deal automation tests, written through the deals package's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tidings.automations.models import Enrolment
from tidings.clock import FakeClock
from tidings.contacts.models import Contact
from tidings.contacts.service import add_tag, set_fields
from tidings.db.engine import Database
from tidings.deals import scoring
from tidings.deals.models import Deal, Note, Stage, Task
from tidings.deals.moves import move_deal_ids
from tidings.deals.pipelines import StageSpec, create_pipeline, stages_of
from tidings.deals.service import create_deal, get_deal, update_deal
from tidings.deals.tasks import TaskInput, create_task, get_task, set_done
from tidings.deals.timeline import deal_row, record_rows
from tidings.deals.users import create_user
from tidings.deals.validation import DealInput

from .helpers import make_contacts

SALES = ("Lead", "Qualified", "Proposal", "Won")
RENEWALS = ("Due", "Renewed")


@dataclass
class Crm:
    database: Database
    clock: FakeClock
    contacts: list[int]
    users: list[int]
    stages: dict[str, int]  # "Sales/Lead" -> id
    pipelines: dict[str, int]

    def stage(self, name: str) -> int:
        return self.stages[name if "/" in name else f"Sales/{name}"]

    def deal(self, contact: int | None = None, stage: str = "Lead", **given: Any) -> int:
        values: dict[str, Any] = {
            "title": "Deal",
            "contact_id": self.contacts[0] if contact is None else contact,
            "stage_id": self.stage(stage),
            **given,
        }
        with self.database.session() as session:
            deal = create_deal(
                session, DealInput(set(values), **values), now=self.clock.now(), cause="api"
            )
            return deal.id

    def update(self, deal_id: int, **given: Any) -> None:
        if "stage" in given:
            given["stage_id"] = self.stage(given.pop("stage"))
        with self.database.session() as session:
            deal = get_deal(session, deal_id)
            update_deal(
                session, deal, DealInput(set(given), **given), now=self.clock.now(), cause="api"
            )

    def move(self, deal_ids: list[int], stage: str) -> int:
        with self.database.session() as session:
            target = self.stage(stage)
            found = session.get(Stage, target)
            assert found is not None
            return move_deal_ids(session, deal_ids, found, now=self.clock.now(), cause="api")

    def task(self, deal_id: int, type_: str = "call", done: bool = False) -> int:
        with self.database.session() as session:
            item = TaskInput(type=type_, title="Call", deal_id=deal_id)
            task = create_task(session, item, now=self.clock.now(), cause="api")
            if done:
                set_done(session, task, True, now=self.clock.now(), cause="api")
            return task.id

    def complete(self, task_id: int) -> None:
        with self.database.session() as session:
            set_done(session, get_task(session, task_id), True, now=self.clock.now(), cause="api")

    def adjust_score(self, deal_id: int, by: int) -> None:
        with self.database.session() as session:
            scoring.adjust_scores(session, [deal_id], by, now=self.clock.now(), cause="api")

    def email_activity(self, deal_id: int, kind: str) -> None:
        """What the 1:1 deal email writes (deal_email_sent / deal_email_replied)."""
        with self.database.session() as session:
            primary = session.scalar(select(Deal.contact_id).where(Deal.id == deal_id))
            row = deal_row(deal_id, primary, kind, "api", self.clock.now(), {"message_id": "x"})
            record_rows(session, [row])

    def get(self, deal_id: int) -> Deal:
        with self.database.session() as session:
            deal = get_deal(session, deal_id)
            session.expunge(deal)
            return deal

    def tasks(self, deal_id: int) -> list[Task]:
        with self.database.session() as session:
            rows = list(session.scalars(select(Task).where(Task.deal_id == deal_id)))
            session.expunge_all()
            return rows

    def notes(self, deal_id: int) -> list[Note]:
        with self.database.session() as session:
            rows = list(session.scalars(select(Note).where(Note.deal_id == deal_id)))
            session.expunge_all()
            return rows


def make_crm(database: Database, clock: FakeClock, contacts: int = 3) -> Crm:
    ids = make_contacts(database, clock, contacts)
    with database.session() as session:
        now = clock.now()
        users = [
            create_user(session, "ann@example.com", "Ann", now=now).id,
            create_user(session, "bob@example.com", "Bob", now=now).id,
        ]
        stages: dict[str, int] = {}
        pipelines: dict[str, int] = {}
        for name, titles in (("Sales", SALES), ("Renewals", RENEWALS)):
            pipeline = create_pipeline(
                session, name, "EUR", [StageSpec(t, probability=10) for t in titles], now=now
            )
            pipelines[name] = pipeline.id
            for stage in stages_of(session, pipeline.id):
                stages[f"{name}/{stage.title}"] = stage.id
    return Crm(database, clock, ids, users, stages, pipelines)


def deal_runs(database: Database, automation_id: int) -> list[tuple[int, int | None, str]]:
    """(contact, deal, state) of every run of the automation, in id order."""
    with database.session() as session:
        rows = session.execute(
            select(Enrolment.contact_id, Enrolment.deal_id, Enrolment.state)
            .where(Enrolment.automation_id == automation_id)
            .order_by(Enrolment.id)
        )
        return [(c, d, s) for c, d, s in rows]


def tag(database: Database, clock: FakeClock, contact_id: int, name: str) -> None:
    with database.session() as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        add_tag(session, found, name, now=clock.now(), cause="api")


def name_contacts(database: Database, clock: FakeClock, names: dict[int, str]) -> None:
    with database.session() as session:
        for contact_id, first in names.items():
            set_fields(session, [contact_id], {"first_name": first}, cause="api", now=clock.now())
