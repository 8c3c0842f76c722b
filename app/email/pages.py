"""The development mailbox pages (development mode only): what the worker "sent"."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from app.core.deps import SettingsDep
from app.core.templating import page_templates
from app.email import devmailbox

router = APIRouter(prefix="/dev/mailbox", include_in_schema=False)

URL_RE = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Plain text with its URLs made clickable (everything else escaped)."""
    out, last = [], 0
    for match in URL_RE.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = match.group(0)
        out.append(Markup('<a href="{0}">{0}</a>').format(url))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _require_dev(settings: SettingsDep) -> None:
    if not settings.dev_mailbox_enabled:
        raise HTTPException(404)


@router.get("", response_class=HTMLResponse)
def mailbox_index(request: Request, settings: SettingsDep) -> Response:
    _require_dev(settings)
    messages = devmailbox.list_messages(settings.DEV_MAILBOX_DIR)
    return page_templates().TemplateResponse(
        request,
        "dev_mailbox.html",
        {
            "locale": "en",
            "locales": [],
            "messages": messages,
            "directory": settings.DEV_MAILBOX_DIR,
            "smtp_configured": bool(settings.MAIL_SERVER),
        },
    )


@router.get("/{key}", response_class=HTMLResponse)
def mailbox_message(key: str, request: Request, settings: SettingsDep) -> Response:
    _require_dev(settings)
    if not re.fullmatch(r"[A-Za-z0-9._:,=-]+", key):
        raise HTTPException(404)
    message = devmailbox.get_message(settings.DEV_MAILBOX_DIR, key)
    if message is None:
        raise HTTPException(404)
    return page_templates().TemplateResponse(
        request,
        "dev_message.html",
        {
            "locale": "en",
            "locales": [],
            "message": message,
            "body": linkify(message.text),
        },
    )
