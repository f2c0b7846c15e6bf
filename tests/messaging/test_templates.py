"""Templates: sandboxed, validated at save time, rendered with defaults."""

from __future__ import annotations

import pytest

from tidings.errors import ValidationFailed
from tidings.messaging.templates import CompiledTemplate, TemplateSource, validate


def source(
    html: str, subject: str = "Hi", variables: dict[str, object] | None = None
) -> TemplateSource:
    return TemplateSource(subject, html, None, variables or {})


def test_default_filter_and_declared_variables() -> None:
    src = source(
        "Hi {{ contact.first_name | default('there') }}, code {{ code }} {{ contact.plan }}",
        variables={"code": "X1"},
    )
    validate(src, ["plan"])
    out = CompiledTemplate(src).render({"contact": {"email": "a@b.c"}, "code": "Z9"})
    assert out.html == "Hi there, code Z9 "


@pytest.mark.parametrize(
    ("html", "needle"),
    [
        ("{{ ''.__class__ }}", "'__class__' is not allowed"),
        ("{{ ''['__class__'] }}", "'__class__' is not allowed"),
        ("{{ contact.first_name.__init__.__globals__ }}", "not allowed"),
        ("{{ cycler.__init__ }}", "not allowed"),
        ("Hi {{ contact.nickname }}", "unknown contact field 'nickname'"),
        ("Hi {{ voucher }}", "unknown variable 'voucher'"),
        ("{% if %}", "syntax error"),
        ("{{ contact.first_name | nosuchfilter }}", "No filter named"),
        ("{{ [].append(1) }}", "not allowed"),
    ],
)
def test_bad_templates_are_refused_at_save(html: str, needle: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        validate(source(html), [])
    assert needle in str(info.value.detail) or any(
        needle in e["message"] for e in info.value.errors
    )
    assert info.value.errors[0]["field"] == "html"


def test_html_is_escaped_and_subject_is_one_line() -> None:
    src = TemplateSource(
        "Hi\n{{ contact.first_name }}\r\nBcc: x@y.z", "<b>{{ contact.first_name }}</b>", None, {}
    )
    out = CompiledTemplate(src).render({"contact": {"first_name": "<script>"}})
    assert out.html == "<b>&lt;script&gt;</b>"
    assert "\n" not in out.subject and "\r" not in out.subject


def test_render_gives_what_jinja_render_gives() -> None:
    """CompiledTemplate renders without Template.render (it merges the globals once); the
    output, globals, assignments and the sandbox are Jinja's own."""
    html = (
        "{% set n = contact.first_name %}{% for i in range(2) %}{{ i }}{{ n }}{% endfor %}"
        "{{ dict(a=1) }}{{ contact | attr('__class__') }}{{ contact.email | e }}<{{ code }}>"
    )
    src = TemplateSource("{{ n }}Hi {{ contact.first_name }}", html, "{{ code }}", {"code": 1})
    compiled = CompiledTemplate(src)
    context = {"contact": {"first_name": "Ann", "email": "a<b@c.d"}, "code": "&"}
    out = compiled.render(context)
    merged = {**src.variables, **context}
    for part, value in (("subject", out.subject), ("html", out.html), ("text", out.text)):
        assert value == compiled._parts[part].render(merged)
    assert out.html == "0Ann1Ann{&#39;a&#39;: 1}a&lt;b@c.d<&amp;>"
