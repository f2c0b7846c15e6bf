"""The deals board: columns with counts and values, a card moved to another stage through the
deals service (its timeline says so), the owner filter, won/lost, a deal's tasks and notes."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from tidings.activities.service import Cause
from tidings.automations import service as automations
from tidings.automations.engine import Engine
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.deals import emails, pipelines, service, tasks
from tidings.deals.models import Deal
from tidings.deals.pipelines import StageSpec
from tidings.deals.validation import DealInput
from tidings.messaging.models import OutboxMessage

from .conftest import csrf_of


def _board(database: Database, clock: FakeClock, owner: int) -> tuple[list[int], list[int]]:
    """A pipeline of three stages; two deals in the first (one with an overdue task)."""
    now = clock.now()
    with database.session() as session:
        contact = contacts.create_contact(
            session,
            ContactInput(email="ann@example.com", first_name="Ann"),
            now=now,
            cause=Cause.API,
        )
        specs = [
            StageSpec(title=t, colour=None, probability=p)
            for t, p in (("Lead", 10), ("Offer", 50), ("Signed", 90))
        ]
        pipeline = pipelines.create_pipeline(session, "Sales", "EUR", specs, now=now)
        stages = [s.id for s in pipelines.stages_of(session, pipeline.id)]
        deals = []
        for title, value, owner_id in (("Big order", 120_000, owner), ("Small order", 5_000, None)):
            item = DealInput(
                given={"title", "value", "pipeline_id", "contact_id", "owner_id"},
                title=title,
                value=value,
                pipeline_id=pipeline.id,
                contact_id=contact.id,
                owner_id=owner_id,
            )
            deals.append(service.create_deal(session, item, now=now, cause=Cause.API).id)
        task = tasks.TaskInput(
            given={"title", "due_at", "deal_id"},
            title="Call back",
            due_at=now - timedelta(days=1),
            deal_id=deals[0],
        )
        tasks.create_task(session, task, now=now, cause=Cause.API)
        return stages, deals


def test_the_board_shows_columns_cards_and_the_overdue_mark(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, _ = _board(database, clock, users["admin"])
    page = admin_client.get("/admin/deals")
    assert page.status_code == 200
    for text in (
        "Lead",
        "Offer",
        "Signed",
        "Big order",
        "Small order",
        "Ann",
        "Call back",
        "overdue",
        "1,250 EUR",
    ):
        assert text in page.text
    assert f'data-stage="{stages[1]}"' in page.text
    assert "Sortable.min.js" in page.text


def test_moving_a_card_goes_through_the_deals_service(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    token = csrf_of(admin_client, "/admin/deals")
    answer = admin_client.post(
        f"/admin/deals/{deals[0]}/move",
        data={"stage_id": str(stages[1])},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert 'id="board"' in answer.text and "<html" not in answer.text
    with database.session() as session:
        assert session.get(Deal, deals[0]).stage_id == stages[1]  # type: ignore[union-attr]
    page = admin_client.get(f"/admin/deals/{deals[0]}")
    assert "deal_stage_changed" in page.text


def test_a_move_to_an_unknown_stage_is_refused_without_a_change(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    token = csrf_of(admin_client, "/admin/deals")
    answer = admin_client.post(
        f"/admin/deals/{deals[0]}/move",
        data={"stage_id": "999999"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 422
    assert 'role="alert"' in answer.text
    with database.session() as session:
        assert session.get(Deal, deals[0]).stage_id == stages[0]  # type: ignore[union-attr]


def _column(database: Database, stage: int) -> list[int]:
    with database.session() as session:
        query = select(Deal.id).where(Deal.stage_id == stage).order_by(Deal.position, Deal.id)
        return list(session.scalars(query))


def _drop(client: TestClient, deal: int, **values: int) -> Response:
    token = csrf_of(client, "/admin/deals")
    data = {name: str(value) for name, value in values.items()}
    return client.post(
        f"/admin/deals/{deal}/move", data=data, headers={"X-CSRF-Token": token, "HX-Request": "1"}
    )


def test_a_card_dropped_higher_in_its_column_keeps_its_place_quietly(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    answer = _drop(admin_client, deals[1], stage_id=stages[0], before_id=deals[0])
    assert answer.status_code == 200
    assert answer.text.index("Small order") < answer.text.index("Big order")
    assert _column(database, stages[0]) == [deals[1], deals[0]]
    again = _drop(admin_client, deals[1], stage_id=stages[0], before_id=deals[0])
    assert again.status_code == 200 and _column(database, stages[0]) == [deals[1], deals[0]]
    page = admin_client.get(f"/admin/deals/{deals[1]}")
    assert "deal_stage_changed" not in page.text
    board = admin_client.get("/admin/deals")
    assert board.text.index("Small order") < board.text.index("Big order")


def test_a_card_dropped_at_a_place_in_another_column_moves_there(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    assert _drop(admin_client, deals[0], stage_id=stages[1]).status_code == 200
    answer = _drop(admin_client, deals[1], stage_id=stages[1], before_id=deals[0])
    assert answer.status_code == 200
    assert _column(database, stages[1]) == [deals[1], deals[0]]
    assert "deal_stage_changed" in admin_client.get(f"/admin/deals/{deals[1]}").text


def test_a_drop_next_to_an_unknown_card_is_a_field_error_without_a_change(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    answer = _drop(admin_client, deals[1], stage_id=stages[1], after_id=999_999)
    assert answer.status_code == 422
    assert "no such deal: 999999" in answer.text and 'id="after_id-error"' in answer.text
    assert _column(database, stages[0]) == deals  # the stage move was rolled back too


def test_a_move_without_the_csrf_token_is_refused(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    answer = admin_client.post(f"/admin/deals/{deals[0]}/move", data={"stage_id": str(stages[1])})
    assert answer.status_code == 403


def test_the_owner_filter_counts_only_their_deals(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    _board(database, clock, users["admin"])
    page = admin_client.get(f"/admin/deals?owner={users['admin']}", headers={"HX-Request": "true"})
    assert "Big order" in page.text and "Small order" not in page.text
    assert '<span class="count">1</span>' in page.text


def test_won_lost_tasks_and_notes_from_the_deal_page(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    token = csrf_of(admin_client, f"/admin/deals/{deals[1]}")

    def post(path: str, data: dict[str, str]) -> Response:
        return admin_client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)

    assert (
        post(f"/admin/deals/{deals[1]}/notes", {"body": "Asked for a discount"}).status_code == 303
    )
    assert (
        post(
            f"/admin/deals/{deals[1]}/tasks", {"title": "Send offer", "due_at": "2030-01-02T10:00"}
        ).status_code
        == 303
    )
    bad = post(f"/admin/deals/{deals[1]}/tasks", {"title": "x", "due_at": "tomorrow"})
    assert bad.status_code == 422 and "due_at" in bad.text
    lost = post(
        f"/admin/deals/{deals[1]}/status",
        {"status": "lost", "lost_reason": "Too dear", "stage_id": str(stages[0])},
    )
    assert lost.status_code == 303
    page = admin_client.get(f"/admin/deals/{deals[1]}")
    for text in ("Asked for a discount", "Send offer", "Too dear", "deal_status_changed"):
        assert text in page.text
    wrong = post(f"/admin/deals/{deals[1]}/status", {"status": "maybe"})
    assert wrong.status_code == 422


def test_the_reports_page_draws_funnel_won_lost_and_forecast(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    _, deals = _board(database, clock, users["admin"])
    token = csrf_of(admin_client, "/admin/deals")
    admin_client.post(
        f"/admin/deals/{deals[0]}/status",
        data={"csrf_token": token, "status": "won"},
        follow_redirects=False,
    )
    page = admin_client.get("/admin/deals/reports")
    assert page.status_code == 200
    for chart in ("funnel-chart", "won-lost-chart", "forecast-chart"):
        assert f'id="{chart}"' in page.text
    assert "Weighted by probability" in page.text


def test_a_deal_email_sent_from_the_page_and_its_reply_listed(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    _, deals = _board(database, clock, users["admin"])
    token = csrf_of(admin_client, f"/admin/deals/{deals[0]}")
    form = {"csrf_token": token, "subject": "Your offer", "message": "Here it is.\nAnn"}
    sent = admin_client.post(f"/admin/deals/{deals[0]}/emails", data=form, follow_redirects=False)
    assert sent.status_code == 303
    with database.session() as session:
        email = emails.list_emails(session, deals[0], before_id=None, limit=5)[0]
        assert email.to_email == "ann@example.com" and email.subject == "Your offer"
        assert session.query(OutboxMessage).filter_by(id=email.outbox_id).count() == 1
        reply = EmailMessage()
        reply["From"] = "Ann <ann@example.com>"
        reply["Subject"] = "Re: Your offer"
        reply.set_content("Thanks, signed.")
        assert emails.record_reply(session, [email.message_token], reply, now=clock.now())
    page = admin_client.get(f"/admin/deals/{deals[0]}")
    assert "Your offer" in page.text and "Thanks, signed." in page.text
    stranger = admin_client.post(
        f"/admin/deals/{deals[0]}/emails", data={**form, "to": "nobody@example.com"}
    )
    assert stranger.status_code == 422 and 'id="to-error"' in stranger.text
    ownerless = admin_client.post(f"/admin/deals/{deals[1]}/emails", data=form)
    assert ownerless.status_code == 422 and 'role="alert"' in ownerless.text
    with database.session() as session:
        assert len(emails.list_emails(session, deals[1], before_id=None, limit=5)) == 0


def test_a_stage_triggered_task_reaches_the_deal_page_and_the_card(
    admin_client: TestClient, database: Database, clock: FakeClock, users: dict[str, int]
) -> None:
    stages, deals = _board(database, clock, users["admin"])
    definition = {
        "name": "Offer follow-up",
        "trigger": {"type": "deal_stage_changed", "pipeline": "Sales", "to": "Offer"},
        "steps": [{"id": "call", "action": "add_task", "title": "Send the quote"}],
    }
    with database.session() as session:
        automations.create_automation(session, definition, now=clock.now())
    worker = Engine(database, clock, batch_size=200)
    worker.run_until_idle()
    token = csrf_of(admin_client, "/admin/deals")
    moved = admin_client.post(
        f"/admin/deals/{deals[1]}/move",
        data={"stage_id": str(stages[1])},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert moved.status_code == 200
    page = admin_client.get(f"/admin/deals/{deals[1]}")
    assert f'hx-get="/admin/deals/{deals[1]}/tasks"' in page.text  # the list asks again
    assert "Send the quote" not in page.text
    worker.run_until_idle()
    part = admin_client.get(f"/admin/deals/{deals[1]}/tasks", headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    assert 'id="deal-tasks"' in part.text and "Send the quote" in part.text
    assert "Next: Send the quote" in admin_client.get("/admin/deals").text
    assert admin_client.get("/admin/deals/999999/tasks").status_code == 404
