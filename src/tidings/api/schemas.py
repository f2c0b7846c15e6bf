"""What every request body and parameter shares: the id type and the base of input models."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from tidings.inputs import MAX_ID, NUL_MESSAGE, find_nul

# An id in a path, a query or a body: anything beyond the 64-bit id columns is a 422.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

NUL_ERROR = "nul_character"


class InputModel(BaseModel):
    """The base of every request body: unknown keys are errors (a typo never silently does
    nothing), and text holding a NUL character, at any depth of a field, is refused with the
    path of the value (`properties.plan`). The problem handler adds that path to the field's."""

    model_config = ConfigDict(extra="forbid")
    # Rows of a bulk upsert are checked by the service instead: a bad row is rejected on its
    # own, the others are written.
    refuse_nul: ClassVar[bool] = True

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if cls.refuse_nul:
            where = find_nul(value)
            if where is not None:
                raise PydanticCustomError(NUL_ERROR, NUL_MESSAGE, {"path": where})
        return value
