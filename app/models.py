"""Every table, imported in one place for Alembic and for tests."""

from sqlmodel import SQLModel

from app.abuse.models import AbuseRule
from app.audit.models import AuditEntry
from app.auth.models import ApiToken, CampaignMember, LoginFailure, User
from app.campaigns.models import Campaign
from app.donations.models import Donation, DonationPayment, StripeEvent
from app.email.models import OutboxMessage, Suppression
from app.letters.models import (
    Letter,
    LetterBand,
    LetterDelivery,
    LetterTemplate,
    PetitionDelivery,
)
from app.petitions.models import Petition, PetitionTarget
from app.signatures.models import Signature, SignatureHourlyTally, SignatureTally
from app.targets.models import Target, TargetGroup
from app.updates.models import PetitionUpdate
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

metadata = SQLModel.metadata

__all__ = [
    "AbuseRule",
    "ApiToken",
    "AuditEntry",
    "CampaignMember",
    "Letter",
    "LetterBand",
    "LetterDelivery",
    "LetterTemplate",
    "LoginFailure",
    "PetitionDelivery",
    "PetitionUpdate",
    "SignatureHourlyTally",
    "Suppression",
    "User",
    "Campaign",
    "Donation",
    "DonationPayment",
    "StripeEvent",
    "OutboxMessage",
    "Petition",
    "PetitionTarget",
    "Signature",
    "SignatureTally",
    "Target",
    "TargetGroup",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
