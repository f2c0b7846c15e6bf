"""Text that ends up in mail headers and bodies: control characters are refused where it is saved.

A NUL breaks PostgreSQL's text columns and SMTP; other C0/C1 control characters (escape,
backspace, form feed, U+0085, …) in a name or a subject garble mail readers or smuggle line
breaks past a header check. Tab, line feed and carriage return are text where text may span
lines (a template, a multi-line custom field); a one-line value (a name, a phone number)
refuses them too.
"""

from __future__ import annotations

import re

from tidings.errors import ValidationFailed

_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMES = {0: "NUL", 9: "tab", 10: "line feed", 13: "carriage return", 27: "escape", 127: "DEL"}


def control_character(value: str, *, multiline: bool) -> str | None:
    """What is wrong with `value` ("the control character U+0000 (NUL) at position 4"), or
    None when it holds none."""
    found = (_IN_TEXT if multiline else _IN_LINE).search(value)
    if found is None:
        return None
    code = ord(found.group())
    name = f" ({_NAMES[code]})" if code in _NAMES else ""
    return f"the control character U+{code:04X}{name} at position {found.start()}"


def refuse_control_characters(field: str, value: str, *, multiline: bool = False) -> None:
    """Raise ValidationFailed naming `field` when `value` holds a control character."""
    problem = control_character(value, multiline=multiline)
    if problem is not None:
        message = f"{field}: contains {problem}"
        raise ValidationFailed(message, errors=[{"field": field, "message": message}])


def counted(count: int, word: str, plural: str | None = None) -> str:
    """'1 contact', '2 contacts': a number with its noun, singular or plural as it needs."""
    return f"{count} {word if count == 1 else (plural or word + 's')}"
