"""Coupon pools: named pools of single-use codes (imported from CSV or generated from a
pattern) handed out one per contact, never twice, however many workers race (`service`)."""
