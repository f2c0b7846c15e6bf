"""SPEC E3: the engagement-tagging template over 90 simulated days, 1,000 scripted contacts."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from tests.automations.helpers import make_contacts
from tidings.automations.engine import Engine
from tidings.automations.templates import install_engagement_tagging
from tidings.clock import FakeClock
from tidings.contacts.models import ContactTag, Tag
from tidings.db.engine import Database
from tidings.events.service import ingest_events

CONTACTS = 1000
DAYS = 90
RATES = (0.0, 0.01, 0.03, 0.08, 0.25)  # chance of interacting on a given day, per profile
KINDS: tuple[dict[str, Any], ...] = (
    {"type": "email_opened"},
    {"type": "link_clicked", "url": "https://example.com/a"},
    {"type": "purchase", "amount": 12.5},
    {"type": "site_visit", "url": "https://example.com/"},
)


def expected_tags(elapsed: timedelta) -> set[str]:
    days = elapsed / timedelta(days=1)
    if days < 7:
        return {"Engaged", "Recent activity"}
    if days < 21:
        return {"Engaged"}
    if days < 30:
        return {"Disengaged"}
    return {"Inactive"}


def all_tags(database: Database) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    with database.session() as session:
        for contact_id, name in session.execute(
            select(ContactTag.contact_id, Tag.name).join(Tag, Tag.id == ContactTag.tag_id)
        ):
            found.setdefault(contact_id, set()).add(name)
    return found


def test_engagement_tagging_over_90_days(database: Database, clock: FakeClock) -> None:
    engine = Engine(database, clock, batch_size=1000)
    ids = make_contacts(database, clock, CONTACTS)
    start = clock.now()
    with database.session() as session:
        _, _, enrolled = install_engagement_tagging(session, now=start)
    assert enrolled == CONTACTS
    engine.run_until_idle()
    entry: dict[int, datetime] = dict.fromkeys(ids, start)
    rng = random.Random(4)
    profile = {cid: RATES[index % len(RATES)] for index, cid in enumerate(ids)}
    for day in range(DAYS):
        noon = start + timedelta(days=day, hours=3)
        clock.set(noon)
        events = []
        for cid in ids:
            if rng.random() < profile[cid]:
                events.append({**rng.choice(KINDS), "contact_id": cid})
                entry[cid] = noon
            elif cid % 11 == 0 and day % 3 == 0:
                # A privacy proxy fetching the pixel is not an interaction.
                events.append({"type": "email_opened", "contact_id": cid, "machine": True})
        with database.session() as session:
            report = ingest_events(session, events, now=noon, cause="api")
            assert not report.rejected
        engine.run_until_idle()
        clock.set(start + timedelta(days=day + 1))
        engine.run_until_idle()
        tags = all_tags(database)
        wrong = {
            cid: (tags.get(cid, set()), expected_tags(clock.now() - entry[cid]))
            for cid in ids
            if tags.get(cid, set()) != expected_tags(clock.now() - entry[cid])
        }
        assert not wrong, (
            f"day {day + 1}: {len(wrong)} contacts wrong, e.g. {list(wrong.items())[:3]}"
        )
    # Every profile was exercised: some contacts are at each stage by the end.
    final = all_tags(database)
    stages = {frozenset(final.get(cid, set())) for cid in ids}
    assert frozenset({"Inactive"}) in stages
    assert frozenset({"Engaged", "Recent activity"}) in stages
