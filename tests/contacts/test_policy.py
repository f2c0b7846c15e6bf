"""SPEC C2, every cell: which message class each status may receive; suppression overrides."""

from __future__ import annotations

import pytest

from tidings.contacts.policy import (
    ContactStatus,
    MessageClass,
    may_run_other_actions,
    may_send,
    needs_explicit_resubscribe,
)

S, M = ContactStatus, MessageClass

# status: (campaign, automation email, transactional, opt-in confirmation, personal 1:1 email)
C2 = {
    S.SUBSCRIBED: (True, True, True, False, True),
    S.PENDING: (False, False, True, True, True),
    S.UNSUBSCRIBED: (False, False, True, False, True),
    S.BOUNCED: (False, False, False, False, False),
    S.COMPLAINED: (False, False, False, False, False),
    S.TRANSACTIONAL: (False, True, True, False, True),
}
CLASSES = (M.CAMPAIGN, M.AUTOMATION, M.TRANSACTIONAL, M.OPT_IN_CONFIRMATION, M.PERSONAL)
CELLS = [(status, klass, row[i]) for status, row in C2.items() for i, klass in enumerate(CLASSES)]


def test_table_covers_every_status() -> None:
    assert set(C2) == set(ContactStatus)


@pytest.mark.parametrize(("status", "klass", "expected"), CELLS)
def test_may_send_matches_c2(status: ContactStatus, klass: MessageClass, expected: bool) -> None:
    decision = may_send(status, klass)
    assert decision.allowed is expected
    assert status.value in decision.reason


@pytest.mark.parametrize(("status", "klass"), [(s, k) for s, k, _ in CELLS])
def test_suppression_refuses_every_cell(status: ContactStatus, klass: MessageClass) -> None:
    decision = may_send(status, klass, suppressed=True)
    assert not decision.allowed
    assert "suppress" in decision.reason


@pytest.mark.parametrize(
    ("status", "allowed", "expected"),
    [
        (S.SUBSCRIBED, None, True),
        (S.TRANSACTIONAL, None, True),
        (S.BOUNCED, None, True),
        (S.COMPLAINED, None, True),
        (S.PENDING, None, False),
        (S.PENDING, frozenset({"pending"}), True),
        (S.UNSUBSCRIBED, None, False),
        (S.UNSUBSCRIBED, frozenset({"unsubscribed"}), True),
    ],
)
def test_other_actions_column(
    status: ContactStatus, allowed: frozenset[str] | None, expected: bool
) -> None:
    assert may_run_other_actions(status, allowed) is expected


@pytest.mark.parametrize("old", [S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED])
@pytest.mark.parametrize("new", [S.SUBSCRIBED, S.PENDING, S.TRANSACTIONAL])
def test_leaving_a_sticky_status_for_mail_needs_explicit_resubscribe(old: S, new: S) -> None:
    assert needs_explicit_resubscribe(old, new)


def test_other_moves_need_nothing_special() -> None:
    assert not needs_explicit_resubscribe(S.SUBSCRIBED, S.UNSUBSCRIBED)
    assert not needs_explicit_resubscribe(S.UNSUBSCRIBED, S.BOUNCED)
    assert not needs_explicit_resubscribe(S.PENDING, S.SUBSCRIBED)
