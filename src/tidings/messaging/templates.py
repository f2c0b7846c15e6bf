"""User templates: sandboxed Jinja2, checked when saved, rendered per contact when sent.

A template may use `contact.<field>` (standard fields and custom-field keys), `coupon.<pool>`
(the contact's code of a coupon pool, kept in the field `coupon_<pool>`), the links the
system provides (`unsubscribe_url`, `preferences_url`, `confirm_url`) and the variables it
declares with an example value. Anything else is a validation error at save time — never a
blank at send time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import new_context

from tidings.config import get_settings
from tidings.errors import ValidationFailed
from tidings.messaging.sandbox import (
    LimitedSandbox,
    RenderLimitExceeded,
    RenderLimits,
    limited,
    render_limited,
)
from tidings.text import control_character

CONTACT_FIELDS = ("id", "email", "first_name", "last_name", "phone", "status", "score")
SYSTEM_VARIABLES = frozenset(
    {"contact", "coupon", "unsubscribe_url", "preferences_url", "confirm_url"}
)
COUPON_PREFIX = "coupon_"  # the contact field of a pool's code (tidings.coupons.service.field_key)
PARTS = ("subject", "html", "text")


def _environment(*, autoescape: bool, strict: bool) -> LimitedSandbox:
    return LimitedSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined if strict else Undefined,
        keep_trailing_newline=True,
    )


_ENVS = {
    (autoescape, strict): _environment(autoescape=autoescape, strict=strict)
    for autoescape in (False, True)
    for strict in (False, True)
}


def _env(part: str, *, strict: bool) -> LimitedSandbox:
    return _ENVS[(part == "html", strict)]


@dataclass(frozen=True, slots=True)
class TemplateSource:
    subject: str
    html: str
    text: str | None
    variables: Mapping[str, Any]

    def parts(self) -> Iterable[tuple[str, str]]:
        yield "subject", self.subject
        yield "html", self.html
        if self.text is not None:
            yield "text", self.text


def _problem(part: str, message: str, line: int | None = None) -> dict[str, Any]:
    where = f"{part}, line {line}" if line else part
    return {"field": part, "line": line, "message": f"{where}: {message}"}


def _static_problems(
    part: str, tree: nodes.Template, allowed: frozenset[str], contact_keys: frozenset[str]
) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in allowed and name.name not in assigned:
            problems.append(_problem(part, f"unknown variable {name.name!r}", name.lineno))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target: nodes.Node = node.node  # type: ignore[attr-defined]
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value if isinstance(node.arg.value, str) else None
        if attr is not None and attr.startswith("_"):
            problems.append(_problem(part, f"access to {attr!r} is not allowed", node.lineno))
        elif (
            attr is not None
            and isinstance(target, nodes.Name)
            and target.name == "contact"
            and attr not in contact_keys
        ):
            problems.append(_problem(part, f"unknown contact field {attr!r}", node.lineno))
        elif (
            attr is not None
            and isinstance(target, nodes.Name)
            and target.name == "coupon"
            and COUPON_PREFIX + attr.lower() not in contact_keys
        ):
            problems.append(_problem(part, f"unknown coupon pool {attr!r}", node.lineno))
    return problems


def sample_contact(custom_keys: Iterable[str]) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "id": 1,
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Example",
        "phone": "+1 555 0100",
        "status": "subscribed",
        "score": 0,
    }
    contact.update({key: f"<{key}>" for key in custom_keys})
    return contact


def default_limits() -> RenderLimits:
    """The limits configured for this process (TIDINGS_TEMPLATE_MAX_BYTES / _MAX_SECONDS)."""
    return RenderLimits.from_settings(get_settings())


def validate(
    source: TemplateSource, custom_keys: Iterable[str], limits: RenderLimits | None = None
) -> None:
    """Raise ValidationFailed listing every problem (syntax, unknown names, sandbox escapes,
    control characters, a trial render that passes the size or time limit)."""
    keys = frozenset(custom_keys)
    for name in source.variables:
        if name in SYSTEM_VARIABLES or not name.isidentifier():
            raise ValidationFailed(f"variables: {name!r} is not allowed as a variable name")
    allowed = SYSTEM_VARIABLES | frozenset(source.variables)
    contact_keys = frozenset(CONTACT_FIELDS) | keys
    problems: list[dict[str, Any]] = []
    renderable: list[tuple[str, str]] = []
    for part, text in source.parts():
        control = control_character(text, multiline=True)
        if control is not None:
            problems.append(_problem(part, f"contains {control}"))
            continue
        try:
            tree = _env(part, strict=True).parse(text)
        except TemplateSyntaxError as exc:
            problems.append(_problem(part, f"syntax error: {exc.message}", exc.lineno))
            continue
        found = _static_problems(part, tree, allowed, contact_keys)
        problems.extend(found)
        if not found:
            renderable.append((part, text))
    # A trial render with example values catches what the static check cannot (a filter
    # applied to the wrong type, a sandbox refusal inside a loop, a limit passed). The parts
    # share one budget, as they do when the message is sent.
    context = {
        "contact": sample_contact(keys),
        "coupon": coupon_context(sample_contact(keys)),
        "unsubscribe_url": "https://example.com/u",
        "preferences_url": "https://example.com/p",
        "confirm_url": "https://example.com/c",
        **source.variables,
    }
    with limited(limits or default_limits()):
        for part, text in renderable:
            problem = _trial_render(part, text, context)
            if problem is not None:
                problems.append(_problem(part, problem))
                if problem.endswith(_LIMIT_NAMES):
                    break  # the budget is spent: the other parts would fail for nothing
    if problems:
        raise ValidationFailed(problems[0]["message"], errors=problems)


_LIMIT_NAMES = ("(TIDINGS_TEMPLATE_MAX_BYTES)", "(TIDINGS_TEMPLATE_MAX_SECONDS)")


def _trial_render(part: str, text: str, context: dict[str, Any]) -> str | None:
    """Why `text` cannot be rendered with the example values, or None."""
    try:
        template = _env(part, strict=True).from_string(text)
        render_limited(template, template.new_context(context))
    except RenderLimitExceeded as exc:
        return str(exc)
    except SecurityError as exc:
        return f"not allowed in a template: {exc}"
    except UndefinedError as exc:
        return f"undefined: {exc}"
    except RENDER_ERRORS as exc:
        return f"cannot render: {_reason(exc)}"
    return None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str | None


# What a template's own code can raise while rendering (a filter on the wrong type, a number
# too large to print, a macro calling itself).
RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, RecursionError, MemoryError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "too deeply nested (a macro or loop calling itself)"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return str(exc)


# Control characters left in a subject (from contact data saved before they were refused).
_SUBJECT_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class CompiledTemplate:
    """A saved template compiled once; render() per contact (lenient: a null field is blank),
    within the size and time limits."""

    def __init__(self, source: TemplateSource, limits: RenderLimits | None = None) -> None:
        self.source = source
        self.limits = limits or default_limits()
        self._parts = {
            part: _env(part, strict=False).from_string(text) for part, text in source.parts()
        }
        # The environment's globals (range, dict, ...), as a plain dict taken once: Jinja's
        # render() merges them from a ChainMap for every part of every message, which cost
        # more than rendering a short template.
        self._globals = {part: dict(template.globals) for part, template in self._parts.items()}
        # The variables the template reads (so the sender signs only the links it shows).
        self.names = frozenset().union(
            *(
                meta.find_undeclared_variables(_env(part, strict=False).parse(text))
                for part, text in source.parts()
            )
        )

    def render(self, context: Mapping[str, Any]) -> Rendered:
        merged = {**self.source.variables, **context}
        rendered: dict[str, str] = {}
        with limited(self.limits):
            for part in self._parts:
                try:
                    rendered[part] = self._render(part, merged)
                except RENDER_ERRORS as exc:
                    raise ValidationFailed(
                        f"template cannot be rendered: {part}: {_reason(exc)}"
                    ) from exc
        # A header never spans lines: newlines in a subject would inject headers.
        subject = " ".join(_SUBJECT_CONTROL.sub(" ", rendered["subject"]).split())
        return Rendered(subject, rendered["html"], rendered.get("text"))

    def _render(self, part: str, values: Mapping[str, Any]) -> str:
        """`Template.render(values)` with the globals merged from the plain dict: the same
        context (the globals, then the values), the same sandboxed code."""
        template = self._parts[part]
        globals_ = self._globals[part]
        context = new_context(
            template.environment,
            template.name,
            template.blocks,
            {**globals_, **values},
            shared=True,
            globals=globals_,
        )
        return render_limited(template, context)


def contact_context(contact: Any) -> dict[str, Any]:
    """The `contact` variable: standard fields and custom fields; nulls left out (so that
    `default(...)` applies)."""
    return context_of({key: getattr(contact, key) for key in CONTACT_FIELDS}, contact.fields)


def context_of(standard: dict[str, Any], custom: Mapping[str, Any] | None) -> dict[str, Any]:
    """contact_context() from the standard fields' values and the custom fields."""
    values = {**standard, **(custom or {})}
    return {key: value for key, value in values.items() if value is not None}


class CouponCodes(dict[str, Any]):
    """The `coupon` variable: pool name (any case) -> the contact's code. A pool the contact
    holds no code of is undefined: blank when sent, or the template's `default(...)`."""

    def __missing__(self, key: str) -> Any:
        lower = key.lower()
        if lower == key or lower not in self:
            raise KeyError(key)
        return self[lower]


def coupon_context(contact: Mapping[str, Any]) -> CouponCodes:
    """`coupon.<pool>` from a contact context: its `coupon_<pool>` fields that hold a code."""
    return CouponCodes(
        (key[len(COUPON_PREFIX) :], value)
        for key, value in contact.items()
        if key.startswith(COUPON_PREFIX) and value not in (None, "")
    )
