"""The development mailbox: an SMTP sink that files every message in a Maildir.

In development, when no MAIL_SERVER is configured, the worker starts this sink and sends to it
over real SMTP; `/dev/mailbox` lists what arrived, with clickable links.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import socket
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MaildirHandler:
    def __init__(self, directory: Path) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(str(directory), create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.maildir.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def start_sink(directory: Path, host: str = "127.0.0.1", port: int | None = None) -> Controller:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection
    controller = Controller(MaildirHandler(directory), hostname=host, port=port or free_port(host))
    controller.start()
    log.info("dev mailbox listening on %s:%s, filing into %s", host, controller.port, directory)
    return controller


@dataclass
class StoredMessage:
    key: str
    date: datetime | None
    to: str
    subject: str
    text: str
    html: str | None


def _parse(key: str, raw: bytes) -> StoredMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    try:
        date = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        date = None
    return StoredMessage(
        key=key,
        date=date,
        to=str(message["To"] or ""),
        subject=str(message["Subject"] or ""),
        text=text_part.get_content() if text_part else "",
        html=html_part.get_content() if html_part else None,
    )


def list_messages(directory: Path, limit: int = 100) -> list[StoredMessage]:
    """Newest first."""
    if not (directory / "cur").exists():
        return []
    box = mailbox.Maildir(str(directory), create=False)
    messages = [_parse(key, box.get_bytes(key)) for key in box.keys()]
    messages.sort(key=lambda m: (m.date is not None, m.date), reverse=True)
    return messages[:limit]


def get_message(directory: Path, key: str) -> StoredMessage | None:
    if not (directory / "cur").exists():
        return None
    box = mailbox.Maildir(str(directory), create=False)
    try:
        return _parse(key, box.get_bytes(key))
    except KeyError:
        return None
