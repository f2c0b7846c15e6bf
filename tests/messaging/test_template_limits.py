"""Templates have limits (size of the output, time of a render) that stop the work itself, and
control characters are refused where templates and contacts are saved."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.messaging.conftest import Sink
from tests.messaging.helpers import make_contact, make_template
from tests.messaging.test_api import send_all
from tidings.app import create_app
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.inputs import NUL_MESSAGE, find_nul
from tidings.messaging import queue_email
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sandbox import RenderLimits
from tidings.messaging.templates import CompiledTemplate, TemplateSource, validate

FAST = RenderLimits(max_bytes=2_000_000, max_seconds=0.3)
ITEMS = {"items": list(range(1000))}


@pytest.mark.parametrize(
    "html",
    [
        "{{ 'a' * 100000000 }}",
        "{{ 100000000 * 'ab' }}",
        "{{ 'a' | center(100000000) }}",
        "{{ 'a'.ljust(100000000) }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ 'ab' | replace('a', 'x' * 1000000) | replace('x', 'yyyy') }}",
        "{{ ('x' * 1500000) ~ ('y' * 1500000) }}",
        "{% for i in items %}{{ 'x' * 5000 }}{% endfor %}",
    ],
)
def test_output_past_the_size_limit_is_refused_before_it_is_built(html: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ValidationFailed) as refused:
            validate(TemplateSource("s", html, None, ITEMS), [], FAST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.detail == "html: output larger than 2 MB (TIDINGS_TEMPLATE_MAX_BYTES)"
    assert peak < 20_000_000  # stopped before it was built, not measured afterwards


@pytest.mark.parametrize(
    "html",
    [
        # loops without output, with output, with a filter inside, captured in a block
        "{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}"
        "{% endfor %}{% endfor %}",
        "{% for a in items %}{% for b in items %}{{ b }}{% endfor %}{% endfor %}",
        "{% for a in items %}{% for b in items %}{{ items | sum }}{% endfor %}{% endfor %}",
        "{% set x %}{% for a in items %}{% for b in items %}{% for c in items %}{{ c }}"
        "{% endfor %}{% endfor %}{% endfor %}{% endset %}",
    ],
)
def test_a_render_past_the_time_limit_is_stopped(html: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate(TemplateSource("s", html, None, ITEMS), [], FAST)
    assert "rendering takes longer than 0.3 s (TIDINGS_TEMPLATE_MAX_SECONDS)" in str(
        refused.value.detail
    )


def test_growth_recursion_and_huge_numbers_are_stopped() -> None:
    """What the static check lets through only when a template was saved some other way
    (ranges, namespaces, macros) is still bounded at send time."""
    cases = {
        "{% set ns = namespace(a='x') %}{% for i in range(60) %}{% set ns.a = ns.a ~ ns.a %}"
        "{% endfor %}": "output larger than 2 MB",
        "{% set ns = namespace(a=[1]) %}{% for i in range(60) %}{% set ns.a = ns.a + ns.a %}"
        "{% endfor %}": "output larger than 2 MB",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}": "too deeply nested",
        "{{ 99999999999 ** 99999 }}": "a number larger than 100000 bits",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}": (
            "rendering takes longer than 0.3 s"
        ),
    }
    for html, reason in cases.items():
        compiled = CompiledTemplate(TemplateSource("s", html, None, {}), FAST)
        with pytest.raises(ValidationFailed) as refused:
            compiled.render({})
        assert reason in refused.value.detail and "html:" in refused.value.detail


def test_ordinary_templates_render_as_before() -> None:
    html = (
        "{{ 'ab' * 3 }}|{{ '%5d' % 3 }}|{{ '{:>4}'.format(1) }}|{{ 'x' | center(5) }}|"
        "{{ 2 ** 10 }}|{{ [1, 2] | join('-') }}|{{ 'a' ~ 'b' }}|"
        "{% for i in items[:3] %}{{ i }}{% endfor %}|{{ 'abc' | replace('b', 'B') }}"
    )
    validate(TemplateSource("s", html, None, ITEMS), [], FAST)
    rendered = CompiledTemplate(TemplateSource("s", html, None, ITEMS), FAST).render({})
    assert rendered.html == "ababab|    3|   1|  x  |1024|1-2|ab|012|aBc"


@pytest.fixture
def limited_client(
    settings: Settings, database: Database, clock: FakeClock, api_key: str
) -> Iterator[TestClient]:
    tight = settings.model_copy(update={"template_max_bytes": 100_000, "template_max_seconds": 0.3})
    app = create_app(tight, database=database, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api_key}"
        yield client


def test_save_and_preview_answer_422_with_the_reason(limited_client: TestClient) -> None:
    client = limited_client
    body = {"name": "big", "subject": "Hi", "html": "{{ 'a' * 100000000 }}"}
    big = client.post("/api/v1/templates", json=body)
    assert big.status_code == 422
    assert big.json()["detail"] == (
        "html: output larger than 100,000 bytes (TIDINGS_TEMPLATE_MAX_BYTES)"
    )
    assert big.json()["errors"][0]["field"] == "html"
    slow = client.post(
        "/api/v1/templates",
        json={
            "name": "slow",
            "subject": "Hi",
            "html": "{% for a in n %}{% for b in n %}{% for c in n %}{% endfor %}{% endfor %}"
            "{% endfor %}",
            "variables": {"n": list(range(500))},
        },
    )
    assert slow.status_code == 422 and "TIDINGS_TEMPLATE_MAX_SECONDS" in slow.json()["detail"]
    # Within the limits with its example values, past them with the data of a preview.
    ok = client.post(
        "/api/v1/templates",
        json={"name": "ok", "subject": "Hi", "html": "{{ 'x' * n }}", "variables": {"n": 3}},
    )
    assert ok.status_code == 201, ok.text
    person = client.post("/api/v1/contacts", json={"email": "ann@example.com"}).json()
    preview = client.post(
        f"/api/v1/templates/{ok.json()['id']}/preview",
        json={"contact_id": person["id"], "data": {"n": 10**9}},
    )
    assert preview.status_code == 422
    assert "output larger than 100,000 bytes" in preview.json()["detail"]
    patched = client.patch(f"/api/v1/templates/{ok.json()['id']}", json={"variables": {"n": 10**9}})
    assert patched.status_code == 422


def test_a_send_past_the_limit_fails_with_its_reason(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    with database.session() as session:
        make_template(session, clock.now(), html="<p>{{ 'x' * n }}</p>", variables={"n": 3})
        for address, n in (("ann@example.org", 3), ("max@example.org", 10**9)):
            contact = make_contact(session, address, clock.now())
            queue_email(
                session,
                contact_id=contact.id,
                template="welcome",
                message_class="transactional",
                idempotency_key=f"limit-{address}",
                now=clock.now(),
                context={"n": n},
            )

    send_all(database, clock, sink)
    assert sink.handler.count_by_recipient() == {"ann@example.org": 1}
    with database.session() as session:
        rows = dict(
            session.execute(
                select(OutboxMessage.recipient, OutboxMessage.status).where(
                    OutboxMessage.recipient == "max@example.org"
                )
            ).all()
        )
        reason = session.scalar(
            select(OutboxMessage.reason).where(OutboxMessage.recipient == "max@example.org")
        )
    assert rows == {"max@example.org": "failed"}
    assert reason is not None and "html: output larger than 2 MB" in reason


# --- control characters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hi\x00there"),
        ("html", "<p>\x1b[31mred</p>"),
        ("text", "a\x07b"),
        ("name", "n\x00"),
    ],
)
def test_control_characters_in_a_template_are_refused(
    client: TestClient, field: str, value: str
) -> None:
    body = {"name": "t", "subject": "Hi", "html": "<p>x</p>", "text": "x", field: value}
    refused = client.post("/api/v1/templates", json=body)
    assert refused.status_code == 422, refused.text
    # A NUL is refused in every request body before anything reads it (tidings.inputs);
    # the other control characters by the template's own check.
    expected = NUL_MESSAGE if "\x00" in value else "contains the control character U+"
    assert refused.json()["detail"].startswith(f"{field}: {expected}")
    assert refused.json()["errors"][0]["field"] == field
    # tab, line feed and carriage return are text in a template
    fine = {"name": "t", "subject": "Hi\tthere", "html": "<p>\r\nx</p>", "text": "a\nb"}
    assert client.post("/api/v1/templates", json=fine).status_code == 201


def test_control_characters_in_contact_fields_are_refused(client: TestClient) -> None:
    assert client.post("/api/v1/fields", json={"key": "city", "type": "text"}).status_code == 201
    for body, field in (
        ({"email": "a@example.org", "first_name": "Ann\x00"}, "first_name"),
        ({"email": "a@example.org", "last_name": "Lee\r\nBcc: x@evil.example"}, "last_name"),
        ({"email": "a@example.org", "phone": "\x1b[2J"}, "phone"),
        ({"email": "a@example.org", "fields": {"city": "Ber\x00lin"}}, "fields.city"),
    ):
        refused = client.post("/api/v1/contacts", json=body)
        assert refused.status_code == 422, refused.text
        expected = NUL_MESSAGE if find_nul(body) is not None else "contains the control character"
        assert refused.json()["detail"].startswith(f"{field}: {expected}")
    created = client.post(
        "/api/v1/contacts",
        json={"email": "a@example.org", "first_name": "Ann", "fields": {"city": "Ber\nlin"}},
    )
    assert created.status_code == 201, created.text
    patched = client.patch(f"/api/v1/contacts/{created.json()['id']}", json={"first_name": "A\x00"})
    assert patched.status_code == 422 and patched.json()["detail"].startswith("first_name:")
    assert client.get(f"/api/v1/contacts/{created.json()['id']}").json()["first_name"] == "Ann"


def test_the_parts_of_a_message_share_one_budget() -> None:
    """Each part alone fits; the message does not (at save as when it is sent)."""
    limits = RenderLimits(max_bytes=100_000, max_seconds=1)
    source = TemplateSource("{{ 'x' * 60000 }}", "{{ 'y' * 60000 }}", None, {})
    validate(TemplateSource("{{ 'x' * 60000 }}", "<p>ok</p>", None, {}), [], limits)
    with pytest.raises(ValidationFailed) as refused:
        validate(source, [], limits)
    assert (
        refused.value.detail
        == "html: output larger than 100,000 bytes (TIDINGS_TEMPLATE_MAX_BYTES)"
    )
    with pytest.raises(ValidationFailed, match="html: output larger"):
        CompiledTemplate(source, limits).render({})
