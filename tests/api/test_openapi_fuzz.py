"""Schemathesis over every operation of the OpenAPI document, on each database: no answer is
a server error, and every status code and content type is one the document declares (issue 13).

The examples per operation are few (the suite stays fast); a run with more is
`TIDINGS_FUZZ_EXAMPLES=50 pytest tests/api/test_openapi_fuzz.py`."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "2"))


def problem_carries_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 422 problem names the invalid fields in `errors`."""
    if (
        response.status_code == 422
        and "problem+json" in response.headers.get("content-type", [""])[0]
    ):
        body = response.json()
        assert body.get("errors"), f"422 without errors: {body}"
    return None


def _described(exc: BaseException) -> str:
    """The error and, for a group (a flaky run's), each error in it: what actually failed."""
    text = f"{type(exc).__name__}: {exc}"
    for inner in getattr(exc, "exceptions", ()):
        text += "\n  " + _described(inner).replace("\n", "\n  ")
    return text


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def test_every_operation_answers_as_documented(app: FastAPI, api_key: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_key}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 100
    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=[*CHECKS, problem_carries_errors])

        try:
            run()
        except Exception as exc:  # collect them all: one run shows every operation's problem
            failures.append(f"{operation.label}: {_described(exc)[:3000]}")
    assert not failures, "\n\n".join(failures)
