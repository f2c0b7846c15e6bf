"""Email address normalisation: syntax only, never DNS."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from tidings.errors import ValidationFailed

MAX_EMAIL_LENGTH = 254

# Fast path for the common case (plain ASCII dot-atom local part). Anything this does not
# match goes to email-validator; the domain always does (cached per domain), so the fast path
# accepts a strict subset of what email-validator accepts.
_ASCII_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


class InvalidEmail(ValidationFailed):
    pass


@lru_cache(maxsize=65_536)
def _normalize_domain(domain: str) -> str:
    try:
        return validate_email("x@" + domain, check_deliverability=False).domain.lower()
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


def normalize_email(raw: str) -> str:
    """Trim, lower-case and syntax-check an address; raises InvalidEmail with the reason.

    The whole address is lower-cased: mailbox providers treat local parts case-insensitively,
    and two contacts for `Ann@x.org` and `ann@x.org` would be mailed twice.
    """
    if not isinstance(raw, str):
        raise InvalidEmail("email must be a string")
    candidate = raw.strip().lower()
    if not candidate:
        raise InvalidEmail("email is empty")
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"email is longer than {MAX_EMAIL_LENGTH} characters")
    local, at, domain = candidate.rpartition("@")
    if at and len(local) <= 64 and _ASCII_LOCAL.fullmatch(local):
        return local + "@" + _normalize_domain(domain)
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()
