"""Odd input never breaks bounce parsing: only BounceParseError, never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.messaging import samples
from tidings.messaging.bounces import BounceParseError, parse_bounce

SHAPES = [
    samples.fill(shape, "0123456789abcdef0123456789abcdef", "ann@example.org")
    for shape in (
        samples.POSTFIX_HARD,
        samples.EXIM_HARD,
        samples.EXCHANGE_HARD,
        samples.GMAIL_HARD,
        samples.YAHOO_SOFT,
        samples.MULTI_RECIPIENT,
        samples.ARF_COMPLAINT,
    )
] + [c.raw for c in samples.corpus()]


def _parse(raw: bytes) -> None:
    try:
        report = parse_bounce(raw)
    except BounceParseError:
        return
    assert report.kind in ("hard", "soft", "complaint", "none")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes(raw: bytes) -> None:
    _parse(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SHAPES),
    st.integers(min_value=0, max_value=6000),
    st.integers(min_value=0, max_value=400),
    st.binary(max_size=50),
)
def test_truncated_and_spliced_reports(raw: bytes, cut: int, length: int, junk: bytes) -> None:
    cut = min(cut, len(raw))
    _parse(raw[:cut] + junk + raw[cut + length :])
