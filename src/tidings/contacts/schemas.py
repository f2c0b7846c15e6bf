"""API shapes for contacts, tags, lists, custom fields and suppressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from tidings.api.schemas import InputModel
from tidings.contacts.fields import FieldType
from tidings.contacts.policy import ContactStatus

MAX_BULK = 10_000


class Strict(InputModel):
    pass


class ContactIn(Strict):
    email: str = Field(max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=64)
    status: ContactStatus | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=100)
    lists: list[str] = Field(default_factory=list, max_length=100)


class BulkContactIn(ContactIn):
    # A row with a NUL character is rejected by the service like any invalid row.
    refuse_nul: ClassVar[bool] = False


class ContactPatch(Strict):
    email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=64)
    fields: dict[str, Any] | None = None


class MembershipOut(BaseModel):
    list_id: int
    list: str
    status: str
    updated_at: datetime


class ContactOut(BaseModel):
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    status: str
    score: int
    fields: dict[str, Any]
    tags: list[str]
    lists: list[MembershipOut]
    created_at: datetime
    updated_at: datetime
    engagement: dict[str, Any] | None = None


class ContactSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    first_name: str | None
    last_name: str | None
    status: str
    score: int
    fields: dict[str, Any]
    created_at: datetime


class ContactPage(BaseModel):
    items: list[ContactSummary]
    next_cursor: str | None


class BulkUpsertIn(Strict):
    contacts: list[BulkContactIn] = Field(max_length=MAX_BULK)
    force_resubscribe: bool = False
    reason: str | None = Field(default=None, max_length=500)


class RejectedOut(BaseModel):
    index: int
    email: str | None
    reason: str


class BulkUpsertOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: list[RejectedOut]
    kept_status: list[dict[str, str]]


class StatusChangeIn(Strict):
    status: ContactStatus
    reason: str | None = Field(default=None, max_length=500)
    force_resubscribe: bool = False


class ActivityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    cause: str
    data: dict[str, Any]
    occurred_at: datetime


class ActivityPage(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None


class TagIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None


class TagPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None


class TagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime


class ListIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    double_opt_in: bool = False


class ListPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    double_opt_in: bool | None = None


class ListOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    double_opt_in: bool
    created_at: datetime


class SubscribeIn(Strict):
    force_resubscribe: bool = False


class _Named(Strict):
    """A custom field's display name is `name`, like a tag's or a list's; `label` is the
    name it had before, still accepted (a deprecated alias)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    label: str | None = Field(
        default=None,
        max_length=200,
        json_schema_extra={"deprecated": True},
        description="Deprecated: the former name of `name`.",
    )

    @model_validator(mode="after")
    def _one_name(self) -> _Named:
        if self.name is not None and self.label is not None and self.name != self.label:
            raise ValueError("name and label (its deprecated alias) differ; give only name")
        self.label = self.name = self.name if self.name is not None else self.label
        return self


class FieldIn(_Named):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    type: FieldType
    options: list[str] | None = Field(default=None, max_length=500)


class FieldPatch(_Named):
    options: list[str] | None = Field(default=None, max_length=500)


class FieldOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    name: str = Field(validation_alias=AliasChoices("name", "label"))
    label: str = Field(description="Deprecated: the same as `name`.")
    type: str
    options: list[str] | None
    created_at: datetime


class SuppressionIn(Strict):
    value: str = Field(min_length=3, max_length=320, description="an address, or @domain")
    reason: str | None = Field(default=None, max_length=500)


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    value: str
    reason: str | None
    created_at: datetime
