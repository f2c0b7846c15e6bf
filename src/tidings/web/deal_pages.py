"""Deals: the pipeline board (drag a card to another stage: static/deals-board.js), won/lost,
the filter by owner, and a deal's page with its timeline, tasks (refreshed while the page is
open), notes and 1:1 emails (the composer and the emails sent with their replies). Every
change goes through the deals service, so the timeline and the stage triggers see it as from
the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.deals import emails, ordering, pipelines, service, tasks
from tidings.deals.models import Deal
from tidings.deals.timeline import timeline
from tidings.deals.validation import DealInput
from tidings.errors import TidingsError, ValidationFailed
from tidings.web import deal_board
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, is_htmx, render

router = APIRouter(dependencies=[Depends(check_csrf)])
IdQuery = Annotated[int | None, Query(ge=1, le=2**62)]
TIMELINE = 100
EMAILS = 50
TASKS = 200
# A deal page asks for its tasks this often: automations add them in the background.
TASKS_REFRESH_SECONDS = 3


def pipeline_choice(session: Session, pipeline: int | None) -> int | None:
    if pipeline is not None:
        return pipelines.get_pipeline(session, pipeline).id
    found = pipelines.list_pipelines(session)
    return found[0].id if found else None


def _board_context(
    session: Session, pipeline_id: int | None, owner_id: int | None, clock: ClockDep
) -> dict[str, Any]:
    cols: list[dict[str, Any]] = []
    if pipeline_id is not None:
        cols = deal_board.columns(session, pipeline_id, owner_id)
        deal_board.decorate(session, cols, clock.now())
    return {
        "pipelines": [(p.id, p.name) for p in pipelines.list_pipelines(session)],
        "pipeline_id": pipeline_id,
        "owners": list(deal_board.user_names(session).items()),
        "owner_id": owner_id,
        "columns": cols,
    }


@router.get("/admin/deals", response_class=HTMLResponse)
def board_page(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    pipeline: IdQuery = None,
    owner: IdQuery = None,
) -> HTMLResponse:
    context = _board_context(session, pipeline_choice(session, pipeline), owner, clock)
    name = "partials/deal_board.html" if is_htmx(request) else "deals.html"
    return render(request, name, context, nav="deals")


@router.post("/admin/deals/{deal_id}/move", response_class=HTMLResponse)
def move_card(
    request: Request,
    deal_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    stage_id: Annotated[int, Form(ge=1, le=2**62)],
    owner: Annotated[int | None, Form(ge=1, le=2**62)] = None,
    before_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
    after_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    """A card dropped on another column: the deal moves there (its stage triggers fire); dropped
    before or after a card (of the same column or the new one), it takes that place, which is a
    pure reorder. The answer is the board again, its counts and values up to date."""
    deal = service.get_deal(session, deal_id)
    errors: dict[str, str] = {}
    try:
        if stage_id != deal.stage_id:
            change = DealInput(given={"stage_id"}, stage_id=stage_id)
            service.update_deal(session, deal, change, now=clock.now(), cause=Cause.ADMIN)
        if before_id is not None or after_id is not None:
            ordering.reposition(session, deal, before_id=before_id, after_id=after_id)
    except TidingsError as exc:
        session.rollback()
        errors = field_errors(exc, "stage_id")
    context = _board_context(session, deal.pipeline_id, owner, clock)
    status = 422 if errors else 200
    return render(request, "partials/deal_board.html", context, errors=errors, status=status)


def _tasks_context(session: Session, deal: Deal) -> dict[str, Any]:
    found = tasks.TaskFilter(deal_id=deal.id)
    return {
        "deal": deal,
        "tasks": tasks.task_page(session, found, after_id=None, limit=TASKS),
        "refresh_seconds": TASKS_REFRESH_SECONDS,
    }


def _deal_context(session: Session, deal_id: int) -> dict[str, Any]:
    deal = service.get_deal(session, deal_id)
    contacts = deal_board.contact_names(session, [deal.contact_id] if deal.contact_id else [])
    sent = emails.list_emails(session, deal.id, before_id=None, limit=EMAILS)
    return {
        **_tasks_context(session, deal),
        "stages": [(s.id, s.title) for s in pipelines.stages_of(session, deal.pipeline_id)],
        "contact": contacts.get(deal.contact_id or 0, ""),
        "owners": list(deal_board.user_names(session).items()),
        "activities": timeline(session, deal.id, before_id=None, limit=TIMELINE),
        "notes": tasks.note_page(
            session, deal_id=deal.id, contact_id=None, before_id=None, limit=100
        ),
        "emails": sent,
        "replies": emails.replies_of(session, [e.id for e in sent]),
    }


def _deal_page(
    request: Request, session: Session, deal_id: int, errors: dict[str, str] | None = None
) -> HTMLResponse:
    status = 422 if errors else 200
    context = _deal_context(session, deal_id)
    return render(request, "deal.html", context, nav="deals", errors=errors, status=status)


@router.get("/admin/deals/{deal_id}", response_class=HTMLResponse)
def deal_page(
    request: Request, deal_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    return _deal_page(request, session, deal_id)


@router.get("/admin/deals/{deal_id}/tasks", response_class=HTMLResponse)
def deal_tasks(
    request: Request, deal_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    """The deal's task list alone, for the page's polling."""
    context = _tasks_context(session, service.get_deal(session, deal_id))
    return render(request, "partials/deal_tasks.html", context, nav="deals")


def due_time(text: str, field: str = "due_at") -> datetime | None:
    """The form's date-time (a browser's datetime-local, read as UTC), or None when blank."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(f"{field}: not a date and time (YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _back(deal_id: int) -> Response:
    return RedirectResponse(f"/admin/deals/{deal_id}", status_code=303)


@router.post("/admin/deals/{deal_id}/status", response_model=None)
def set_status(
    request: Request,
    deal_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    status: Annotated[str, Form(max_length=10)],
    lost_reason: Annotated[str, Form(max_length=500)] = "",
    stage_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
) -> Response:
    """Won, lost (with its reason), open again, or another stage from the deal's page."""
    deal = service.get_deal(session, deal_id)
    given = {"status"} | ({"lost_reason"} if status == "lost" else set())
    change = DealInput(given=given, status=status, lost_reason=lost_reason.strip() or None)
    if stage_id is not None and stage_id != deal.stage_id:
        change.given.add("stage_id")
        change.stage_id = stage_id
    try:
        service.update_deal(session, deal, change, now=clock.now(), cause=Cause.ADMIN)
    except TidingsError as exc:
        session.rollback()
        return _deal_page(request, session, deal_id, field_errors(exc, "status"))
    return _back(deal_id)


@router.post("/admin/deals/{deal_id}/notes", response_model=None)
def add_note(
    request: Request,
    deal_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    body: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    try:
        tasks.create_note(
            session,
            body,
            deal_id=deal_id,
            contact_id=None,
            author_id=login.user_id,
            now=clock.now(),
            cause=Cause.ADMIN,
        )
    except TidingsError as exc:
        session.rollback()
        return _deal_page(request, session, deal_id, field_errors(exc, "body"))
    return _back(deal_id)


@router.post("/admin/deals/{deal_id}/tasks", response_model=None)
def add_task(
    request: Request,
    deal_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    title: Annotated[str, Form(max_length=300)] = "",
    due_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        due = due_time(due_at)
        item = tasks.TaskInput(
            given={"title", "due_at", "deal_id"}, title=title, due_at=due, deal_id=deal_id
        )
        tasks.create_task(session, item, now=clock.now(), cause=Cause.ADMIN)
    except TidingsError as exc:
        session.rollback()
        return _deal_page(request, session, deal_id, field_errors(exc, "title"))
    return _back(deal_id)


@router.post("/admin/deals/{deal_id}/tasks/{task_id}/done", response_model=None)
def complete_task(
    deal_id: Id, task_id: Id, login: LoginDep, session: PageSessionDep, clock: ClockDep
) -> Response:
    task = tasks.get_task(session, task_id)
    tasks.set_done(session, task, True, now=clock.now(), cause=Cause.ADMIN)
    return _back(deal_id)


@router.post("/admin/deals/{deal_id}/emails", response_model=None)
def send_email(
    request: Request,
    deal_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    subject: Annotated[str, Form(max_length=2000)] = "",
    message: Annotated[str, Form(max_length=100_000)] = "",
    to: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Write to the deal's contact as its owner, through the deals emails service (as
    `POST /api/v1/deals/{id}/emails`): queued by the outbox, refused with the reason."""
    deal = service.get_deal(session, deal_id)
    given = emails.EmailInput(subject=subject, body=message, to=to.strip() or None)
    try:
        emails.send_email(session, deal, given, now=clock.now(), cause=Cause.ADMIN)
    except TidingsError as exc:
        session.rollback()
        return _deal_page(request, session, deal_id, _email_errors(exc))
    return RedirectResponse(f"/admin/deals/{deal_id}#h-emails", status_code=303)


def _email_errors(exc: TidingsError) -> dict[str, str]:
    """The service's errors under the composer's fields; one about the deal itself (its owner
    missing or deactivated) is shown above the form as "email"."""
    errors: dict[str, str] = {}
    for field, message in field_errors(exc, "email").items():
        field = "message" if field == "body" else field  # "body" is the note form's field
        errors[field if field in ("to", "subject", "message") else "email"] = message
    return errors
