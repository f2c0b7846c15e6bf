"""A bounded fuzz over every /api/3 route: whatever ids, query keys and JSON arrive, the
answer is ActiveCampaign-shaped JSON and never a server error."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount

from tests.strategies import json_values

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
ENVELOPES = [
    "contact",
    "contactTag",
    "contactList",
    "contactAutomation",
    "tag",
    "list",
    "listGroup",
    "field",
    "fieldRel",
    "fieldValue",
    "fieldOptions",
    "deal",
    "dealGroup",
    "dealStage",
    "dealTask",
    "dealTasktype",
    "note",
    "user",
    "webhook",
    "eventTrackingEvent",
    "deals",
]
ATTRIBUTES = [
    "email",
    "firstName",
    "title",
    "name",
    "tag",
    "list",
    "contact",
    "status",
    "value",
    "stage",
    "group",
    "owner",
    "relid",
    "reltype",
    "ownerType",
    "field",
    "url",
    "events",
    "sources",
    "fieldValues",
    "currency",
    "type",
    "perstag",
    "options",
    "automation",
    "duedate",
    "note",
]
path_values = st.one_of(
    st.integers(min_value=-2, max_value=5).map(str),
    st.integers().map(str),
    st.text(alphabet="abc%0 ./", max_size=6),
)
queries = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "offset",
            "email",
            "listid",
            "tagid",
            "search",
            "ids",
            "status",
            "contact",
            "filters[search]",
            "filters[stage]",
            "filters[contactid]",
            "filters[minimum_value]",
            "filters[created_after]",
            "filters[updated_after]",
            "filters[x]",
            "orders[cdate]",
            "orders[value]",
            "orders[nope]",
        ]
    ),
    st.one_of(st.text(max_size=8), st.integers().map(str), st.sampled_from(["ASC", "DESC", "1"])),
    max_size=3,
)
bodies = st.one_of(
    json_values,
    st.builds(
        lambda key, attrs: {key: attrs},
        st.sampled_from(ENVELOPES),
        st.dictionaries(st.sampled_from(ATTRIBUTES), json_values, max_size=4),
    ),
)


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every documented /api/3 operation, and a few resources Tidings does not offer."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/api/3")
    paths = mount.app.openapi()["paths"]  # type: ignore[attr-defined]
    found = [(method.upper(), path) for path, ops in paths.items() for method in ops]
    return [*found, ("GET", "/campaigns"), ("POST", "/ecomOrders"), ("GET", "/nothing/{x}")]


def _fill(path: str, values: list[str]) -> str:
    parts = iter(values)
    return re.sub(r"\{[^}]+\}", lambda _: next(parts, "1") or "1", path)


def test_no_route_answers_a_server_error(app: FastAPI, ac: TestClient) -> None:
    routes = _routes(app)
    assert len(routes) > 80

    @FUZZ
    @given(
        st.sampled_from(routes),
        st.lists(path_values, min_size=2, max_size=2),
        queries,
        bodies,
    )
    def run(route: tuple[str, str], values: list[str], query: dict[str, str], body: Any) -> None:
        method, path = route
        kwargs: dict[str, Any] = {"params": query}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = body
        answer = ac.request(method, _fill(path, values), **kwargs)
        assert answer.status_code < 500, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/json"

    run()
