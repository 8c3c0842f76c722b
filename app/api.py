"""Every router, in one place."""

from fastapi import APIRouter, Depends

from app.abuse import router as abuse
from app.auth import router as auth
from app.auth.deps import get_current_user
from app.campaigns import admin as campaign_admin
from app.console import router as console
from app.donations import pages as donation_pages
from app.donations import router as donations
from app.email import pages as mailbox_pages
from app.email import router as email
from app.exports import router as exports
from app.letters import pages as letter_pages
from app.letters import router as letters
from app.osdi import router as osdi
from app.petitions import embed as petition_embed
from app.petitions import pages as petition_pages
from app.petitions import router as petitions
from app.rights import pages as rights_pages
from app.rights import router as rights
from app.sharing import pages as sharing_pages
from app.signatures import pages as signature_pages
from app.signatures import router as signatures
from app.stats import router as stats
from app.updates import pages as update_pages
from app.updates import router as updates
from app.webhooks import router as webhooks

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(petitions.router)
api_router.include_router(signatures.router)
api_router.include_router(stats.router)
api_router.include_router(donations.router)
api_router.include_router(auth.auth_router)
api_router.include_router(rights.router)
api_router.include_router(letters.router)

# Everything under /api/v1/admin requires a signed-in user, whatever the route itself declares;
# routes then check the user may manage the campaign concerned.
admin_router = APIRouter(prefix="/admin", dependencies=[Depends(get_current_user)])
admin_router.include_router(auth.admin_router)
admin_router.include_router(campaign_admin.router)
admin_router.include_router(exports.router)
admin_router.include_router(updates.router)
admin_router.include_router(abuse.router)
admin_router.include_router(letters.admin_router)
admin_router.include_router(email.admin_router)
admin_router.include_router(webhooks.router)
api_router.include_router(admin_router)

page_router = APIRouter()
page_router.include_router(petition_pages.router)
page_router.include_router(petition_embed.router)
page_router.include_router(sharing_pages.router)
page_router.include_router(signature_pages.router)
page_router.include_router(donation_pages.router)
page_router.include_router(mailbox_pages.router)
page_router.include_router(rights_pages.router)
page_router.include_router(update_pages.router)
page_router.include_router(letter_pages.router)
page_router.include_router(console.router)  # the organiser console, under /admin
page_router.include_router(osdi.router)  # /api/osdi/v1: OSDI, authenticated as the admin API
