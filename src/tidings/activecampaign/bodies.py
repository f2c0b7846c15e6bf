"""The base of /api/3 request bodies: ActiveCampaign's clients send attributes Tidings has no
use for (`orgid`, `deleted`, ...), so unknown keys are ignored rather than refused; ids may
come as numbers or as strings ("12"); NUL characters are refused as everywhere else."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from tidings.api.schemas import InputModel
from tidings.inputs import MAX_ID


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


class ACModel(InputModel):
    model_config = ConfigDict(extra="ignore")


AcId = Annotated[int, Field(ge=1, le=MAX_ID)]
OptionalId = Annotated[
    int | None, BeforeValidator(_blank_is_none), Field(default=None, ge=0, le=MAX_ID)
]
Text = Annotated[str | None, Field(default=None, max_length=100_000)]
