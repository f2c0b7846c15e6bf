"""`{{ coupon.POOL }}`: the contact's code of a pool (its field coupon_<pool>), checked at save
time against the pools' fields, blank or the template's default when the contact has none."""

from __future__ import annotations

import pytest

from tidings.errors import ValidationFailed
from tidings.messaging.templates import (
    CompiledTemplate,
    TemplateSource,
    context_of,
    coupon_context,
    validate,
)

HTML = "Code: {{ coupon.SPRING }} / {{ coupon.spring | default('none yet') }}"


def _render(contact: dict[str, object]) -> str:
    values = context_of({"id": 1, "email": "a@example.com"}, contact)
    compiled = CompiledTemplate(TemplateSource("Hi", HTML, None, {}))
    assert "coupon" in compiled.names
    return compiled.render({"contact": values, "coupon": coupon_context(values)}).html


def test_a_pool_name_in_any_case_shows_the_contacts_code() -> None:
    validate(TemplateSource("Hi", HTML, None, {}), ["coupon_spring"])
    assert _render({"coupon_spring": "SP-1234"}) == "Code: SP-1234 / SP-1234"


def test_no_code_renders_blank_or_the_templates_default() -> None:
    assert _render({}) == "Code:  / none yet"
    assert _render({"coupon_spring": ""}) == "Code:  / none yet"


def test_an_unknown_pool_is_refused_when_saved() -> None:
    with pytest.raises(ValidationFailed, match="html, line 1: unknown coupon pool 'WINTER'"):
        validate(TemplateSource("Hi", "{{ coupon.WINTER }}", None, {}), ["coupon_spring"])
