"""Outgoing HTTP calls to addresses users configure (webhook actions, webhook subscriptions)."""
