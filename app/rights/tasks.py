"""Outbox renderers of this domain (being written: see the issue tracker)."""
