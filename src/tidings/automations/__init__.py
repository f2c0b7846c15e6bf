"""Automations: definitions, triggers, steps, actions and the durable engine (SPEC A1-A7, E3)."""
