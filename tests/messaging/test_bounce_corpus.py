"""The bounce corpus (bounce_corpus/*.eml): every shape read with the recipients, kinds and rule
its file states."""

from __future__ import annotations

import pytest

from tests.messaging import samples
from tidings.messaging.bounces import parse_bounce

CORPUS = samples.corpus()


@pytest.mark.parametrize("sample", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus(sample: samples.CorpusMessage) -> None:
    report = parse_bounce(sample.raw)
    found = {r.address: r.kind.value for r in report.recipients}
    assert report.kind == sample.kind, (report.rule, found)
    if sample.recipients is not None:
        assert found == sample.recipients, report.as_json()
    else:
        assert set(found.values()) <= {"none"}, report.as_json()
    assert (report.rule or "").startswith(sample.rule), report.as_json()
    if sample.token:
        assert report.token == sample.token
    for r in report.recipients:
        assert r.rule, r


def test_corpus_is_broad() -> None:
    kinds = [c.kind for c in CORPUS]
    assert len(CORPUS) >= 40
    assert kinds.count("hard") >= 20 and kinds.count("soft") >= 8 and kinds.count("none") >= 10
