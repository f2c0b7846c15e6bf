"""The contacts list: search and filters, keyset pages (newest first), a new-contact form,
and bulk actions on the selected contacts or on every contact matching the filters."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, DatabaseDep
from tidings.contacts import search
from tidings.contacts import service as contacts
from tidings.contacts.importer import export_contacts
from tidings.contacts.models import Contact, MailingList, Tag
from tidings.contacts.policy import ContactStatus
from tidings.contacts.upsert import ContactInput
from tidings.errors import TidingsError, field_error
from tidings.segments.models import Segment
from tidings.web.contact_filters import ContactFilter, matching, matching_ids, read_filter
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import field_errors, render

router = APIRouter(dependencies=[Depends(check_csrf)])
PAGE_SIZE = 50
BULK_ACTIONS = ("tag", "list", "unsubscribe", "export")


def choices(session: Session) -> dict[str, Any]:
    """What the filter and bulk selects offer."""
    return {
        "tags": list(session.scalars(select(Tag.name).order_by(Tag.name).limit(1000))),
        "lists": [
            (i, n)
            for i, n in session.execute(
                select(MailingList.id, MailingList.name).order_by(MailingList.name)
            )
        ],
        "statuses": [(s.value, s.value) for s in ContactStatus],
        "segments": [
            (i, n)
            for i, n in session.execute(select(Segment.id, Segment.name).order_by(Segment.name))
        ],
    }


def _page(
    request: Request,
    session: Session,
    wanted: ContactFilter,
    now: Any,
    *,
    after: int | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    indexed = len(wanted.q) >= search.TRIGRAM
    query = matching(session, replace(wanted, q="") if indexed else wanted, now)
    rows: list[Contact] = []
    if not wanted.errors and indexed:
        rows = search.newest_matching(session, query, wanted.q, limit=PAGE_SIZE + 1, before=after)
    elif not wanted.errors:
        if after is not None:
            query = query.where(Contact.id < after)
        rows = list(session.scalars(query.order_by(Contact.id.desc()).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {
        "filter": wanted,
        "rows": rows,
        "next_query": wanted.query(after=rows[-1].id) if more else None,
        "paged": after is not None,
        **choices(session),
        **extra,
    }
    all_errors = {**wanted.errors, **(errors or {})}
    code = 422 if wanted.errors and status == 200 else status
    return render(request, "contacts.html", context, nav="contacts", errors=all_errors, status=code)


@router.get("/admin/contacts", response_class=HTMLResponse)
def contacts_list(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    after: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    done: Annotated[str, Query(max_length=300)] = "",
) -> HTMLResponse:
    wanted = read_filter(request.query_params)
    return _page(request, session, wanted, clock.now(), after=after, done=done)


@router.post("/admin/contacts", response_class=HTMLResponse)
def create_contact(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=320)] = "",
    first_name: Annotated[str, Form(max_length=200)] = "",
    last_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    item = ContactInput(
        email=email, first_name=first_name.strip() or None, last_name=last_name.strip() or None
    )
    try:
        contact = contacts.create_contact(session, item, now=clock.now(), cause=Cause.ADMIN)
    except TidingsError as exc:
        errors = field_errors(exc, "email")
        new = {"email": email, "first_name": first_name, "last_name": last_name}
        return _page(
            request, session, ContactFilter(), clock.now(), status=422, errors=errors, new=new
        )
    return RedirectResponse(f"/admin/contacts/{contact.id}", status_code=303)


def _export(session: Session, database: Any, where: Any) -> StreamingResponse:
    # The export reads in a session of its own: end this request's transaction first (on
    # SQLite it holds the one write lock).
    session.commit()
    buffer = io.StringIO()
    export_contacts(database, buffer, where=where)

    def chunks() -> Iterator[str]:
        buffer.seek(0)
        while chunk := buffer.read(65536):
            yield chunk

    headers = {"Content-Disposition": 'attachment; filename="contacts.csv"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)


@router.post("/admin/contacts/bulk", response_model=None)
def bulk(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    database: DatabaseDep,
    clock: ClockDep,
    action: Annotated[str, Form(max_length=20)] = "",
    scope: Annotated[str, Form(max_length=20)] = "selected",
    ids: Annotated[list[int], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    bulk_tag: Annotated[str, Form(max_length=200)] = "",
    bulk_list: Annotated[str, Form(max_length=20)] = "",
    q: Annotated[str, Form(max_length=200)] = "",
    tag: Annotated[str, Form(max_length=200)] = "",
    list: Annotated[str, Form(max_length=20)] = "",
    status: Annotated[str, Form(max_length=20)] = "",
    segment: Annotated[str, Form(max_length=20)] = "",
    condition: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    now = clock.now()
    wanted = read_filter(
        {
            "q": q,
            "tag": tag,
            "list": list,
            "status": status,
            "segment": segment,
            "condition": condition,
        }
    )
    try:
        if action not in BULK_ACTIONS:
            raise field_error("action", "choose an action")
        if scope == "all":
            targets: Any = matching_ids(session, wanted, now)
            if wanted.errors:
                raise field_error("scope", "the filters have errors")
        else:
            if not ids:
                raise field_error("ids", "select contacts first (or choose every matching contact)")
            targets = sorted(set(ids))
        if action == "export":
            return _export(session, database, Contact.id.in_(targets))
        message = _apply(session, action, targets, bulk_tag, bulk_list, now)
    except TidingsError as exc:
        return _page(request, session, wanted, now, status=422, errors=field_errors(exc, "action"))
    return RedirectResponse(
        f"/admin/contacts?{urlencode({**wanted.params(), 'done': message})}", status_code=303
    )


def _apply(
    session: Session, action: str, targets: Any, tag_name: str, list_id: str, now: Any
) -> str:
    if action == "tag":
        name = tag_name.strip()
        if not name:
            raise field_error("bulk_tag", "name the tag")
        tag_ids = contacts.ensure_tags(session, [name], now)
        changes = contacts.add_tags(session, targets, tag_ids, cause=Cause.ADMIN, now=now)
        return f"Tagged {len(changes.changed)} contact(s) with {name}."
    if action == "list":
        if not list_id.strip().isdigit():
            raise field_error("bulk_list", "choose a list")
        mailing_list = contacts.get_list(session, int(list_id))
        changes = contacts.subscribe(session, targets, mailing_list, cause=Cause.ADMIN, now=now)
        refused = (
            f" ({len(changes.refused)} had left it and were not re-added)"
            if changes.refused
            else ""
        )
        return f"Added {len(changes.changed)} contact(s) to {mailing_list.name}{refused}."
    changes = contacts.set_status(
        session,
        targets,
        ContactStatus.UNSUBSCRIBED,
        cause=Cause.ADMIN,
        now=now,
        reason="unsubscribed in the admin",
    )
    return f"Unsubscribed {len(changes.changed)} contact(s)."
