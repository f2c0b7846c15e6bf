"""Tidings: a self-hosted marketing-automation and CRM engine."""

__version__ = "0.1.0"
