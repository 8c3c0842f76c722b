"""The bytes the worker sends: the same as the email package would write, in a sound MIME shape."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import io
import re
from email import base64mime
from email.generator import BytesGenerator
from email.message import Message
from email.policy import compat32

import pytest

from app.core.config import Settings
from app.email import mime
from app.email.mime import MimeBuilder, UnsafeHeader, flatten
from app.email.service import Attachment, EmailMessage
from app.email.smtp import mail_config

HTML = "<p>Thank you, {name}.</p>\n<p><a href='https://example.org/c/abc'>Confirm</a></p>\n"
TEXT = "Thank you, {name}.\n\nConfirm: https://example.org/c/abc\r\nFrom the campaign team\n"

MESSAGES = {
    "English": EmailMessage(
        to="ada@example.org",
        to_name="Ada Lovelace",
        subject="Please confirm your signature",
        text=TEXT.format(name="Ada"),
        html=HTML.format(name="Ada"),
    ),
    "Korean, with a long subject and custom headers": EmailMessage(
        to="minjun@example.org",
        to_name="김민준",
        subject="서명을 확인해 주세요: 포로가 된 북한 군인 두 명의 강제 송환을 막아 주세요 " * 2,
        text=TEXT.format(name="김민준"),
        html=HTML.format(name="김민준"),
        headers={
            "Content-Language": "ko",
            "List-Unsubscribe": "<https://example.org/updates/unsubscribe/" + "x" * 90 + ">",
        },
    ),
    "Ukrainian letter, from and reply-to a supporter, with attachments": EmailMessage(
        to="office@example.org",
        to_name='Міністр "закордонних" справ, Київ',
        subject="Лист про захист двох полонених",
        text="Шановний пане Міністре,\n\nFrom a supporter.\n",
        html="<p>Шановний пане Міністре,</p>",
        from_name="Олена Коваленко (via Chorus)",
        reply_to=[("Олена Коваленко", "olena@example.org"), ("", "team@example.org")],
        attachments=[
            Attachment("signatures.csv", "name,country\nАда,UA\n".encode(), "text/csv"),
            Attachment("letter.pdf", bytes(range(256)) * 40, "application/pdf"),
        ],
    ),
}


def reference(message: Message) -> bytes:
    """What the email package itself writes (as aiosmtplib's send_message would)."""
    with io.BytesIO() as out:
        BytesGenerator(out, policy=compat32).flatten(message)
        return out.getvalue()


def builder(settings: Settings) -> MimeBuilder:
    return MimeBuilder(settings, mail_config(settings, server="", port=25))


def built(settings: Settings, message: EmailMessage) -> Message:
    """The MIME message, built by fastapi-mail and reshaped (whatever its shape)."""
    return asyncio.run(builder(settings).message(7, message))


def sent(settings: Settings, message: EmailMessage) -> bytes:
    """The bytes the worker sends (the direct writer's, or the MIME message's)."""
    mime = asyncio.run(builder(settings).build(7, message))
    return mime if isinstance(mime, bytes) else flatten(mime)


@pytest.mark.parametrize("name", MESSAGES)
def test_the_bytes_sent_are_what_the_email_package_writes(settings: Settings, name: str) -> None:
    mime = built(settings, MESSAGES[name])
    assert flatten(mime) == reference(mime)


# Messages the direct writer writes: no attachment, an ASCII address.
DIRECT = {
    **{name: message for name, message in MESSAGES.items() if not message.attachments},
    "from and reply-to a supporter, no attachment": dataclasses.replace(
        MESSAGES["Ukrainian letter, from and reply-to a supporter, with attachments"],
        attachments=[],
    ),
    "a long ASCII subject, no names, texts without a final newline": EmailMessage(
        to="ada@example.org",
        subject="Please confirm your signature on the petition to stop the forced return " * 2,
        text="x" * 57 * 3,  # base64 of exactly three lines
        html="<p>" + "y" * 300 + "</p>",
        headers={"Auto-Submitted": "auto-generated"},
    ),
    "no subject, one-character texts": EmailMessage(
        to="ada@example.org", subject="", text="\n", html="h"
    ),
}
_BOUNDARY = re.compile(rb"=_chorus_[0-9a-f]{32}")
_DATE = re.compile(rb"^Date: .*$", re.MULTILINE)


def _comparable(data: bytes) -> bytes:
    """The bytes with each MIME boundary and the date (chosen when it is built) made equal."""
    return _DATE.sub(b"Date: -", _BOUNDARY.sub(b"=_chorus_-", data))


@pytest.mark.parametrize("name", DIRECT)
def test_the_direct_writer_writes_what_the_mime_message_is_written_as(
    settings: Settings, name: str
) -> None:
    direct = asyncio.run(builder(settings).build(7, DIRECT[name]))
    assert isinstance(direct, bytes)  # (not the MIME message: the test would prove nothing)
    assert _comparable(direct) == _comparable(flatten(built(settings, DIRECT[name])))
    assert len(set(_BOUNDARY.findall(direct))) == 1


def test_other_shapes_are_built_as_mime_messages(settings: Settings) -> None:
    letter = MESSAGES["Ukrainian letter, from and reply-to a supporter, with attachments"]
    for message in (letter, dataclasses.replace(MESSAGES["English"], text="")):
        assert isinstance(asyncio.run(builder(settings).build(7, message)), Message)


def test_shapes_the_quick_writer_does_not_cover_go_to_the_email_package() -> None:
    mangled = Message()
    mangled["Subject"] = "A line that Compat32 mangles"
    mangled.set_payload("Hello\nFrom here on\n")
    signed = email.message_from_string(
        'Content-Type: multipart/signed; boundary="b"\n\n--b\n\nhi\n--b--\n', policy=compat32
    )
    for message in (mangled, signed):
        assert flatten(message) == reference(message)
    assert b">From here on" in flatten(mangled)


def test_messages_have_a_sound_mime_structure(settings: Settings) -> None:
    plain = email.message_from_bytes(
        sent(settings, MESSAGES["English"]), policy=email.policy.default
    )
    assert plain.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in plain.iter_parts()] == ["text/plain", "text/html"]
    assert plain["Subject"] == "Please confirm your signature"
    assert plain["Message-ID"] == "<outbox-7@example.org>"

    letter = email.message_from_bytes(
        flatten(
            built(
                settings,
                MESSAGES["Ukrainian letter, from and reply-to a supporter, with attachments"],
            )
        ),
        policy=email.policy.default,
    )
    assert [p.get_content_type() for p in letter.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/csv",
        "application/pdf",
    ]
    # The message's headers once, on the top part; multiparts carry no transfer encoding
    # (RFC 2045 allows none but 7bit, 8bit and binary there).
    assert letter["Subject"] == "Лист про захист двох полонених"
    for part in letter.walk():
        if part.is_multipart():
            assert "Content-Transfer-Encoding" not in part
            if part is not letter:
                assert "Subject" not in part and "To" not in part
    assert letter["Reply-To"] == "Олена Коваленко <olena@example.org>, team@example.org"
    (sender,) = letter["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Олена Коваленко (via Chorus)",
        settings.MAIL_FROM,
    )
    pdf = next(p for p in letter.walk() if p.get_content_type() == "application/pdf")
    assert pdf.get_content() == bytes(range(256)) * 40


@pytest.mark.parametrize(
    "value",
    ["Eve\nnot a header <eve@example.org>", "Eve\r\n\r\nbody <eve@example.org>"],
)
def test_a_header_that_would_end_the_header_block_is_never_written(value: str) -> None:
    """Whatever reaches the writer, a line break in a value cannot end the header block
    early (the rest, Message-ID included, would become body) or pose as a header."""
    message = Message()
    message["To"] = value
    message["Message-ID"] = "<outbox-1@example.org>"
    message.set_payload("Thank you.")
    with pytest.raises(UnsafeHeader):
        flatten(message)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 56, 57, 58, 114, 1000, 4096])
def test_base64_lines_are_what_the_utf8_charset_writes(length: int) -> None:
    data = bytes((n * 37 + 11) % 256 for n in range(length))
    assert mime.base64_lines(data) == base64mime.body_encode(data)
