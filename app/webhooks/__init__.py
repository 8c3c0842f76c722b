"""Outgoing webhooks: signed events to the endpoints organisers register per campaign."""
