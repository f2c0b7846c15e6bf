"""The assign_coupon action: one code per contact kept in a contact field, the same on a second
run, and the `empty` branch once the pool runs out."""

from __future__ import annotations

from tests.automations.helpers import automation, contact, make_contacts, tags_of
from tidings.automations.engine import Engine
from tidings.automations.service import enrol_contacts, get_automation
from tidings.clock import FakeClock
from tidings.coupons import service as coupons
from tidings.db.engine import Database

STEPS = """
name: Coupons
runs: multiple
steps:
  - {id: give, action: assign_coupon, pool: SPRING, empty: sorry}
  - {id: thanks, action: add_tag, tag: got-coupon, next: end}
  - {id: sorry, action: add_tag, tag: no-coupon}
"""


def test_codes_go_one_per_contact_into_a_field_and_empty_branches(
    database: Database, clock: FakeClock, engine: Engine
) -> None:
    ids = make_contacts(database, clock, 3)
    with database.session() as session:
        pool = coupons.create_pool(session, "SPRING", now=clock.now())
        coupons.import_csv(session, pool, "A1\nA2\n")
    a = automation(database, clock, STEPS)
    for _ in range(2):  # a second run gives each contact the code it already holds
        with database.session() as session:
            enrol_contacts(session, get_automation(session, a.id), now=clock.now(), contact_ids=ids)
        engine.run_until_idle()
    fields = [contact(database, cid).fields.get("coupon_spring") for cid in ids]
    assert sorted(f for f in fields if f) == ["A1", "A2"]
    assert ["got-coupon" in tags_of(database, cid) for cid in ids] == [
        f is not None for f in fields
    ]
    assert sum("no-coupon" in tags_of(database, cid) for cid in ids) == 1
    with database.session() as session:
        stock = coupons.stock(session, coupons.get_pool(session, "SPRING"))
    assert stock["assigned"] == 2 and stock["shortage"] == 2
