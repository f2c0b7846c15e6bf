"""Shapes shared by the deals package's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from tidings.api.pagination import MAX_LIMIT
from tidings.api.schemas import Id
from tidings.inputs import MAX_ID

IdQuery = Annotated[Id | None, Query()]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
# Amounts in minor units live in 64-bit columns like ids (a negative one is the service's
# error to name).
Money = Annotated[int, Field(le=MAX_ID)]
MoneyQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)
