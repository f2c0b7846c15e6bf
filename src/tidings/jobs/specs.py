"""Job specs: what a job does, as YAML or JSON, parsed into pydantic models by `kind`.

A spec is checked whole before any run starts: an unknown key, a missing field or a bad
value is one error naming its path (`export.format: ...`). Checks that need the database (the
segment's fields, the list, the template) happen when the run starts, before any effect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tidings.errors import ValidationFailed

Segment = str | dict[str, Any] | list[Any]  # a saved segment's name, or a condition


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendSpec(Spec):
    """A broadcast to a list or a segment, or one message to one address."""

    kind: Literal["send"]
    template: str = Field(min_length=1, max_length=200)
    list: str | None = None
    segment: Segment | None = None
    to: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)
    # Of the single message (`to`); a broadcast is a campaign.
    message_class: Literal["transactional", "automation", "campaign"] = "transactional"

    @model_validator(mode="after")
    def _one_audience(self) -> SendSpec:
        given = [n for n in ("list", "segment", "to") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of list, segment and to")
        return self


class ContactsExport(Spec):
    type: Literal["contacts"]
    segment: Segment | None = None


class EventsExport(Spec):
    type: Literal["events"]
    since: datetime
    until: datetime
    types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _window(self) -> EventsExport:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until need a time zone (2026-03-01T00:00:00Z)")
        if self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class ReportExport(Spec):
    type: Literal["report"]
    report: Literal["broadcast", "automation", "engagement", "import"]
    # The broadcast, automation or import run (a job run id) the report is about.
    id: int | None = Field(default=None, ge=1)
    days: int = Field(default=30, ge=1, le=3660)

    @model_validator(mode="after")
    def _needs_id(self) -> ReportExport:
        if self.report != "engagement" and self.id is None:
            raise ValueError(f"a {self.report} report needs the id of the {self.report}")
        return self


class ExportSpec(Spec):
    kind: Literal["export"]
    export: Annotated[ContactsExport | EventsExport | ReportExport, Field(discriminator="type")]
    format: Literal["csv", "ndjson"] = "csv"
    gzip: bool = False
    # The file name's beginning; the run id and the extension are added.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")

    @model_validator(mode="after")
    def _contacts_are_csv(self) -> ExportSpec:
        if self.export.type == "contacts" and self.format != "csv":
            raise ValueError("contacts are exported as CSV (the columns the importer reads)")
        return self


class ImportSpec(Spec):
    """Every new CSV of the drop folder (TIDINGS_IMPORT_DIR unless `folder` is given)."""

    kind: Literal["import"]
    folder: str | None = None
    list: str | None = None
    tag: str | None = None
    status: Literal["subscribed", "unconfirmed"] = "subscribed"


class MembershipSpec(Spec):
    kind: Literal["membership"]
    action: Literal["add", "remove", "unsubscribe"]
    segment: Segment
    # The list to add to or remove from; `unsubscribe` changes the contacts' status instead.
    list: str | None = None

    @model_validator(mode="after")
    def _list_when_needed(self) -> MembershipSpec:
        if self.action != "unsubscribe" and not self.list:
            raise ValueError(f"action {self.action} needs a list")
        return self


class HygieneSpec(Spec):
    kind: Literal["hygiene"]
    action: Literal["delete", "suppress_addresses", "suppress_domains", "erase"]
    segment: Segment | None = None
    # erase: the one contact to erase, by address.
    email: str | None = Field(default=None, max_length=320)
    reason: str = Field(min_length=1, max_length=1000)
    confirm_all: bool = False

    @model_validator(mode="after")
    def _target(self) -> HygieneSpec:
        if self.action == "erase":
            if not self.email or self.segment is not None:
                raise ValueError("erase takes an email (one contact), not a segment")
        elif self.segment is None or self.email is not None:
            raise ValueError(f"{self.action} takes a segment, not an email")
        return self


JobSpec = Annotated[
    SendSpec | ExportSpec | ImportSpec | MembershipSpec | HygieneSpec,
    Field(discriminator="kind"),
]
KINDS = ("send", "export", "import", "membership", "hygiene")
_ADAPTER: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)


def _path(loc: tuple[Any, ...], prefix: str) -> str:
    # pydantic puts the union member's tag in the path ("export", "EventsExport"): keep the
    # names a spec's author wrote.
    parts = [prefix] if prefix else []
    for index, part in enumerate(loc):
        if index == 0 and part in KINDS:
            continue
        member = part in ("contacts", "events", "report")
        if member and index > 0 and loc[index - 1] == "export":
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[") or "spec"


def _field(error: Any, prefix: str) -> str:
    loc = tuple(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "type" if loc else "kind")  # the tag that chose no model
    return _path(loc, prefix)


def parse_spec(data: Any, *, prefix: str = "") -> JobSpec:
    """A job spec from its parsed YAML/JSON, or ValidationFailed naming the path of each error."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"{prefix or 'spec'}: a job spec is a mapping with a kind")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        errors = [{"field": _field(e, prefix), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(detail, errors=errors) from None


def parse_yaml(text: str) -> JobSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"spec: not valid YAML ({exc})") from None
    return parse_spec(data)


def spec_json(spec: JobSpec) -> dict[str, Any]:
    """The spec as stored on the run (JSON: datetimes as ISO text)."""
    return spec.model_dump(mode="json", exclude_none=True)
