"""A contact's page: profile and custom fields edited inline, tags, lists, status with its
history and reason, engagement, the timeline (infinite scroll, kind filter), automations,
deals and tasks. Each editable part is a partial that htmx swaps after its form is sent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.automations import service as automations
from tidings.contacts import repository
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, MailingList
from tidings.contacts.policy import ContactStatus
from tidings.errors import TidingsError, field_error
from tidings.web import contact_reads
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, render

router = APIRouter(dependencies=[Depends(check_csrf)])
PROFILE = ("first_name", "last_name", "phone")


def _profile_context(session: Session, contact: Contact) -> dict[str, Any]:
    return {"contact": contact, "field_defs": repository.field_definitions(session)}


def _tags_context(session: Session, contact: Contact) -> dict[str, Any]:
    return {"contact": contact, "tags": repository.tag_names(session, contact.id)}


def _lists_context(session: Session, contact: Contact) -> dict[str, Any]:
    return {
        "contact": contact,
        "memberships": repository.list_memberships(session, contact.id),
        "all_lists": list(session.execute(select(MailingList.id, MailingList.name))),
    }


def _timeline_context(
    contact_id: int, rows: list[Any], next_before: int | None, kind: str
) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "activities": rows,
        "next_before": next_before,
        "kind": kind,
        "describe": contact_reads.describe,
    }


@router.get("/admin/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    kind: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    return _contact_page(request, session, contact_id, kind=kind)


def _contact_page(
    request: Request,
    session: Session,
    contact_id: int,
    *,
    kind: str = "",
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    deals = contact_reads.deals_of(session, contact.id)
    rows, next_before = contact_reads.timeline(session, contact.id, kind=kind)
    context = {
        **_profile_context(session, contact),
        **_tags_context(session, contact),
        **_lists_context(session, contact),
        **_timeline_context(contact.id, rows, next_before, kind),
        "kinds": [(k, label) for k, (label, _) in contact_reads.TIMELINE_KINDS.items()],
        "statuses": [(s.value, s.value) for s in ContactStatus],
        "status_history": contact_reads.status_history(session, contact.id),
        "automations": automations.contact_automations(session, contact.id),
        "deals": deals,
        "tasks": contact_reads.tasks_of(session, contact.id, [d["deal"].id for d in deals]),
    }
    return render(request, "contact.html", context, nav="contacts", status=status, errors=errors)


@router.get("/admin/contacts/{contact_id}/profile", response_class=HTMLResponse)
def profile(
    request: Request, contact_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    return render(request, "partials/contact_profile.html", _profile_context(session, contact))


@router.get("/admin/contacts/{contact_id}/profile/edit", response_class=HTMLResponse)
def profile_form(
    request: Request, contact_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    context = {**_profile_context(session, contact), "values": _current_values(session, contact)}
    return render(request, "partials/contact_profile_form.html", context)


def _current_values(session: Session, contact: Contact) -> dict[str, str]:
    values = {"email": contact.email}
    values.update({k: getattr(contact, k) or "" for k in PROFILE})
    for key, value in (contact.fields or {}).items():
        values[f"field.{key}"] = ", ".join(value) if isinstance(value, list) else str(value)
    return values


async def form_values(request: Request) -> dict[str, str]:
    """Every text field of a form whose names are not known in advance (custom fields)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


FormValues = Annotated[dict[str, str], Depends(form_values)]


def _custom_values(session: Session, values: dict[str, str]) -> dict[str, Any]:
    """The custom fields of the form (inputs `field.<key>`); a blank one clears the value."""
    fields: dict[str, Any] = {}
    for key, definition in repository.field_definitions(session).items():
        raw = values.get(f"field.{key}")
        if raw is None:
            continue
        raw = raw.strip()
        if definition.type.value == "multi_choice":
            fields[key] = [p.strip() for p in raw.split(",") if p.strip()] or None
        else:
            fields[key] = raw or None
    return fields


@router.post("/admin/contacts/{contact_id}/profile", response_class=HTMLResponse)
def save_profile(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    values: FormValues,
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    try:
        contacts.update_contact(
            session,
            contact,
            now=clock.now(),
            cause=Cause.ADMIN,
            email=values.get("email", contact.email).strip(),
            profile={k: (values.get(k, "").strip() or None) for k in PROFILE},
            fields=_custom_values(session, values) or None,
        )
    except TidingsError as exc:
        context = {**_profile_context(session, contact), "values": values}
        return render(
            request,
            "partials/contact_profile_form.html",
            context,
            status=422,
            errors=_form_errors(exc),
        )
    return render(request, "partials/contact_profile.html", _profile_context(session, contact))


def _form_errors(exc: TidingsError) -> dict[str, str]:
    errors = field_errors(exc, "email")
    # A custom field's error names the field's key; its input is named field.<key>.
    return {(k if k in ("email", *PROFILE) else f"field.{k}"): v for k, v in errors.items()}


def _tags_part(request: Request, session: Session, contact: Contact, **kw: Any) -> HTMLResponse:
    return render(request, "partials/contact_tags.html", _tags_context(session, contact), **kw)


@router.post("/admin/contacts/{contact_id}/tags", response_class=HTMLResponse)
def add_tag(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    tag: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    try:
        contacts.add_tag(session, contact, tag, now=clock.now(), cause=Cause.ADMIN)
    except TidingsError as exc:
        errors = {"tag": next(iter(field_errors(exc, "tag").values()))}
        return _tags_part(request, session, contact, status=422, errors=errors)
    return _tags_part(request, session, contact)


@router.post("/admin/contacts/{contact_id}/tags/remove", response_class=HTMLResponse)
def remove_tag(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    tag: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    contacts.remove_tag(session, contact, tag, now=clock.now(), cause=Cause.ADMIN)
    return _tags_part(request, session, contact)


def _lists_part(request: Request, session: Session, contact: Contact, **kw: Any) -> HTMLResponse:
    return render(request, "partials/contact_lists.html", _lists_context(session, contact), **kw)


@router.post("/admin/contacts/{contact_id}/lists", response_class=HTMLResponse)
def join_list(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    list_id: Annotated[str, Form(max_length=20)] = "",
    resubscribe: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    try:
        if not list_id.isdigit():
            raise field_error("list_id", "choose a list")
        mailing_list = contacts.get_list(session, int(list_id))
        contacts.subscribe_list(
            session,
            contact,
            mailing_list,
            now=clock.now(),
            cause=Cause.ADMIN,
            force_resubscribe=resubscribe,
        )
    except TidingsError as exc:
        errors = {"list_id": next(iter(field_errors(exc, "list_id").values()))}
        return _lists_part(request, session, contact, status=422, errors=errors)
    return _lists_part(request, session, contact)


@router.post("/admin/contacts/{contact_id}/lists/{list_id}/leave", response_class=HTMLResponse)
def leave_list(
    request: Request,
    contact_id: Id,
    list_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
) -> HTMLResponse:
    contact = contacts.get_contact(session, contact_id)
    mailing_list = contacts.get_list(session, list_id)
    contacts.unsubscribe_list(session, contact, mailing_list, now=clock.now(), cause=Cause.ADMIN)
    return _lists_part(request, session, contact)


@router.post("/admin/contacts/{contact_id}/status", response_class=HTMLResponse)
def change_status(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    status: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    resubscribe: Annotated[bool, Form()] = False,
) -> Response:
    contact = contacts.get_contact(session, contact_id)
    try:
        if not reason.strip():
            raise field_error("reason", "say why the status changes (it is kept in the history)")
        contacts.change_status(
            session,
            contact,
            status,
            now=clock.now(),
            cause=Cause.ADMIN,
            reason=reason.strip(),
            force_resubscribe=resubscribe,
        )
    except TidingsError as exc:
        errors = field_errors(exc, "status")
        return _contact_page(request, session, contact_id, status=422, errors=errors)
    return RedirectResponse(f"/admin/contacts/{contact_id}#status", status_code=303)


@router.get("/admin/contacts/{contact_id}/timeline", response_class=HTMLResponse)
def timeline(
    request: Request,
    contact_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    kind: Annotated[str, Query(max_length=20)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """A page of timeline rows: the next one (infinite scroll) or the first of another kind."""
    rows, next_before = contact_reads.timeline(session, contact_id, kind=kind, before=before)
    context = _timeline_context(contact_id, rows, next_before, kind)
    return render(request, "partials/timeline_rows.html", context)
