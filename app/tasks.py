"""Imports every domain's outbox renderers so the worker knows all message kinds."""

from app.campaigns import tasks as campaign_tasks
from app.donations import tasks as donation_tasks
from app.letters import tasks as letter_tasks
from app.rights import tasks as rights_tasks
from app.signatures import tasks as signature_tasks
from app.updates import tasks as update_tasks
from app.webhooks import tasks as webhook_tasks

__all__ = [
    "campaign_tasks",
    "donation_tasks",
    "letter_tasks",
    "rights_tasks",
    "signature_tasks",
    "update_tasks",
    "webhook_tasks",
]
