"""Contacts, their status and sending policy, tags, lists, custom fields and suppression."""
