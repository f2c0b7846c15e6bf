"""Shapes shared by the deals package's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from tidings.api.pagination import MAX_LIMIT

# Ids are 64-bit: anything larger is refused as input, not left to fail in the database.
MAX_ID = 2**63 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


class Strict(BaseModel):
    # Unknown keys are errors, so a typo never silently does nothing.
    model_config = ConfigDict(extra="forbid")


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)
