"""Whatever arrives, the email endpoints answer with a result or a problem, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
jinja_ish = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "contact.",
        "__class__",
        "|default(",
        "'x'",
        "for",
        "if",
        "endfor",
        "mro",
        "[0]",
        "()",
        " ",
        "a",
        "{#",
        "#}",
        "unsubscribe_url",
        ".__globals__",
    ]
)
templates = st.lists(jinja_ish, max_size=12).map("".join)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def test_templates_never_fail_with_500(client: TestClient) -> None:
    @FUZZ
    @given(subject=templates, html=templates, text=st.none() | templates, variables=json_values)
    def check(subject: str, html: str, text: str | None, variables: Any) -> None:
        body = {
            "name": f"t{abs(hash((subject, html)))}",
            "subject": subject,
            "html": html,
            "text": text,
            "variables": variables,
        }
        response = client.post("/api/v1/templates", json=body)
        assert response.status_code < 500, response.text

    check()


def test_other_endpoints_never_fail_with_500(client: TestClient) -> None:
    client.post("/api/v1/templates", json={"name": "t", "subject": "s", "html": "h"})
    client.post("/api/v1/contacts", json={"email": "a@example.com"})

    @FUZZ
    @given(
        path=st.sampled_from(
            [
                "/api/v1/messages/transactional",
                "/api/v1/broadcasts",
                "/api/v1/opt-ins",
                "/api/v1/templates/1/preview",
            ]
        ),
        body=json_values,
    )
    def check(path: str, body: Any) -> None:
        response = client.post(path, json=body)
        assert response.status_code < 500, response.text

    check()

    @FUZZ
    @given(raw=st.binary(max_size=500))
    def bounce(raw: bytes) -> None:
        response = client.post("/api/v1/webhooks/bounce", content=raw)
        assert response.status_code < 500, response.text

    bounce()
    for path in ("/u/x", "/preferences/x", "/confirm/x", "/u/" + "A" * 500):
        assert TestClient(client.app).get(path).status_code == 404
