"""Building the MIME message of a rendered e-mail, and writing it out as the bytes sent.

fastapi-mail builds the body (text and HTML alternatives); this reshapes it (attachments in a
multipart/mixed, our own boundaries, the recipient, a stable Message-ID) and refuses a header
value that would break the header block. `flatten` writes the result as BytesGenerator would,
at a fraction of its cost. The messages of a surge (a text and an HTML part, no attachment, to
an ASCII address: every confirmation e-mail) skip the objects altogether: `MimeBuilder.build`
writes their bytes directly, byte for byte what the objects would be written as
(tests/email/test_mime.py holds it to that), for a third of a worker's CPU per message.
"""

from __future__ import annotations

import binascii
import io
import re
import secrets
import time
from email import encoders
from email._policybase import Compat32
from email.generator import BytesGenerator
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.utils import formataddr, formatdate
from functools import lru_cache
from typing import Any

from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType
from fastapi_mail.schemas import MultipartSubtypeEnum
from pydantic import NameEmail

from app.core.config import Settings
from app.email.service import Attachment, EmailMessage


class UnsafeHeader(ValueError):
    """A header value that would break the message's header block (a line break in a name).

    The message is refused rather than "repaired": its data came from someone's input and
    should be fixed there. It is retried with backoff like any failure (the data may be
    corrected meanwhile), then failed; it never holds up other messages.
    """


# What may not appear in a header value: a CR or LF would end the header (and let the rest
# pose as headers of its own, or as the body); other control characters are refused by mail
# servers or shown as garbage.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A header name (RFC 5322): printable ASCII but the colon.
_HEADER_NAME = re.compile(r"[!-9;-~]+")


def check_header(name: str, value: str, *, what: str = "") -> None:
    """Raise UnsafeHeader for a value the header `name` cannot carry as it is.

    The reason names the header (and `what` in it), never the value: it is shown to admins
    and may be someone's name.
    """
    found = _CONTROL.search(value)
    if found is None:
        return
    problem = "a line break" if found.group() in "\r\n" else "a control character"
    raise UnsafeHeader(f"the {name} header{f' ({what})' if what else ''} would contain {problem}")


def check_headers(message: EmailMessage) -> None:
    """Every header value a rendered message brings, checked before anything is built."""
    check_header("To", message.to, what="address")
    check_header("To", message.to_name or "", what="name")
    check_header("Subject", message.subject)
    check_header("From", message.from_name or "", what="name")
    for name, address in message.reply_to:
        check_header("Reply-To", name, what="name")
        check_header("Reply-To", address, what="address")
    for header, value in message.headers.items():
        if not _HEADER_NAME.fullmatch(header):
            raise UnsafeHeader(f"{header!r} is not a header name")
        check_header(header, value)
    for attachment in message.attachments:
        check_header("Content-Disposition", attachment.filename, what="file name")
        check_header("Content-Type", attachment.media_type)


# The headers that describe a MIME part itself; the others (From, Subject...) are the message's.
_PART_HEADERS = frozenset(("content-type", "mime-version", "content-transfer-encoding"))


def _move_message_headers(source: Any, target: Any) -> None:
    for name, value in source.items():
        if name.lower() not in _PART_HEADERS:
            target[name] = value
    for name in {name for name in source.keys() if name.lower() not in _PART_HEADERS}:
        del source[name]


def unwrapped(message: Any) -> Any:
    """The multipart/alternative that fastapi-mail wraps in a multipart/related of one part
    (which relates nothing), carrying the message's headers; other shapes as they are."""
    payload = message.get_payload()
    if message.get_content_type() != "multipart/related" or len(payload) != 1:
        return message
    (body,) = payload
    _move_message_headers(message, body)
    return body


def with_attachments(body: Any, attachments: list[Attachment]) -> MIMEMultipart:
    """multipart/mixed: the body (the text and HTML alternatives) first, then each attachment.

    (fastapi-mail would put attachments inside multipart/alternative, where mail clients
    treat them as yet another version of the body.)
    """
    mixed = MIMEMultipart("mixed")
    _move_message_headers(body, mixed)
    mixed.attach(body)
    for attachment in attachments:
        # "text/csv; charset=utf-8": the type, then its parameters.
        media_type, *params = (p.strip() for p in attachment.media_type.split(";"))
        main, _, sub = media_type.partition("/")
        part = MIMEBase(main, sub)
        for name, _, value in (p.partition("=") for p in params if p):
            part.set_param(name, value)
        part.set_payload(attachment.content)
        encoders.encode_base64(part)
        part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
        mixed.attach(part)
    return mixed


# A line end inside a written header that is not followed by folding white space: the header
# block would end there, or the rest would read as another header.
_NEWLINE_WITHOUT_FWSP = re.compile(rb"\r\n[^ \t]|\r[^ \n\t]|\n[^ \t]")


class _QuickHeaders(Compat32):
    """Compat32 (what fastapi-mail's messages use), without its costly folding machinery for
    headers that need none: a short ASCII value is written as it is, which is exactly what
    Compat32 would write. Anything else (long, non-ASCII, encoded) goes the usual way, and what
    that writes is checked: Compat32 (before Python 3.11.10) writes a value's line break as it
    is, so a line without a colon ended the header block early (what follows, the Message-ID
    included, became body)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + len(value) + 2 <= 78
            and "\n" not in value
            and "\r" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        if isinstance(value, str) and name in _SHARED_HEADERS:
            return _fold_slowly(name, value)
        return self.fold_checked(name, value)

    def fold_checked(self, name: str, value: Any) -> bytes:
        folded = super().fold_binary(name, value)
        if _NEWLINE_WITHOUT_FWSP.search(folded.rstrip(b"\r\n")):
            raise UnsafeHeader(f"the {name} header would contain a line break")
        return folded


_QUICK_HEADERS = _QuickHeaders()


# Headers whose values many messages share: their folded form is kept (_fold_slowly). Not the
# recipient's own (To, List-Unsubscribe...) nor From (a supporter's letter is from their name):
# each is written once, and would only push the shared ones out (and keep people's names and
# addresses in memory after they asked to be forgotten).
_SHARED_HEADERS = frozenset(("Subject",))


@lru_cache(maxsize=1024)
def _fold_slowly(name: str, value: str) -> bytes:
    """A header folded the usual way, kept: the e-mails of a surge share their Subject (a
    non-ASCII or long one took 60 µs to fold, a twentieth of a worker's CPU per message)."""
    return _QUICK_HEADERS.fold_checked(name, value)


def flatten(mime: Any) -> bytes:
    """The message as the bytes sent over SMTP (aiosmtplib normalises line ends to CRLF).

    Byte for byte what email.generator.BytesGenerator writes (tests/email/test_mime.py
    holds it to that), for the shapes our messages take: headers, then either a multipart
    body with its boundary or an ASCII (already transfer-encoded) payload. The generator
    does the same through a copy of itself and a buffer per part, and that machinery was a
    fifth of a worker's CPU. Any other shape goes to the generator itself.
    """
    chunks: list[bytes] = []
    if _flatten_into(mime, chunks):
        return b"".join(chunks)
    with io.BytesIO() as out:
        BytesGenerator(out, policy=_QUICK_HEADERS).flatten(mime)
        return out.getvalue()


def _flatten_into(part: Any, chunks: list[bytes]) -> bool:
    """Append a part as BytesGenerator would; False (chunks then unusable) for any shape this
    does not cover."""
    for name, value in part.raw_items():
        chunks.append(_QUICK_HEADERS.fold_binary(name, value))
    chunks.append(b"\n")
    payload = part._payload  # noqa: SLF001 (the generator reads it so too)
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        boundary = part.get_boundary()
        if (
            not isinstance(payload, list)
            or not boundary
            or part.get_content_subtype() == "signed"  # the generator writes those verbatim
            or part.preamble is not None
            or part.epilogue is not None
        ):
            return False
        delimiter = f"\n--{boundary}\n".encode("ascii")
        chunks.append(delimiter[1:])
        for index, subpart in enumerate(payload):
            if index:
                chunks.append(delimiter)
            if not _flatten_into(subpart, chunks):
                return False
        chunks.append(f"\n--{boundary}--\n".encode("ascii"))
        return True
    if payload is None:
        return True
    if (
        maintype == "message"
        or not isinstance(payload, str)
        or not payload.isascii()
        or "\r" in payload
        or "From " in payload  # Compat32 would mangle it to ">From "
    ):
        return False
    chunks.append(payload.encode("ascii"))
    return True


_SAMPLE_TOKEN = b"X" * 32  # stands for a boundary's token (secrets.token_hex(16))


def _direct_shape(message: EmailMessage) -> bool:
    """Whether `MimeBuilder.direct` writes this message: a multipart/alternative of a text and
    an HTML part and nothing else, to an address that needs no SMTPUTF8 (`smtp.send`)."""
    return bool(message.text) and not message.attachments and message.to.isascii()


def _text_part(text: str, subtype: str) -> bytes:
    """A text part as MIMEText(text, subtype, "utf-8") is written: its headers, then the
    UTF-8 text in base64, as the utf-8 charset encodes it (76-column lines, each ending in a
    newline)."""
    head = f'Content-Type: text/{subtype}; charset="utf-8"\nMIME-Version: 1.0\n'
    body = base64_lines(text.encode("utf-8"))
    return f"{head}Content-Transfer-Encoding: base64\n\n{body}".encode("ascii")


def base64_lines(data: bytes) -> str:
    """What email.base64mime.body_encode(data) gives (76-column lines, each ending in a
    newline), encoded in one call rather than one per line (it was a tenth of a mail worker's
    event-loop CPU per confirmation e-mail)."""
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join(f"{encoded[i : i + 76]}\n" for i in range(0, len(encoded), 76))


class MimeBuilder:
    """Builds the MIME messages a worker sends, from one sender (MAIL_FROM)."""

    def __init__(self, settings: Settings, config: ConnectionConfig) -> None:
        self.sender = settings.MAIL_FROM
        self.mailer = FastMail(config)
        self.domain = settings.MAIL_FROM.rpartition("@")[2] or "chorus.local"
        # The From header fastapi-mail writes (FastMail._sender), for `direct`.
        name = config.MAIL_FROM_NAME
        self.from_header = formataddr((name, self.sender), charset="utf-8") if name else self.sender
        # The Content-Type line of `direct`'s messages, folded once (it is too long to be
        # written as it is, and folding it took 36 µs): only the boundary's 32 hex digits
        # differ from message to message, and folding goes by lengths and spaces alone.
        sample = f'multipart/alternative; boundary="=_chorus_{_SAMPLE_TOKEN.decode()}"'
        self.content_type = _QUICK_HEADERS.fold_binary("Content-Type", sample)
        self._date_second = -1
        self._date_text = ""

    def _date(self) -> str:
        """The Date header's value now, formatdate(localtime=True): it names whole seconds,
        so it is written once a second (it was a thirtieth of a worker's CPU per e-mail)."""
        second = int(time.time())
        if second != self._date_second:
            self._date_text = formatdate(second, localtime=True)
            self._date_second = second
        return self._date_text

    async def build(self, message_id: int, message: EmailMessage) -> Any:
        """What to send for outbox message `message_id`: its bytes (`direct`) when it has the
        usual shape, else the MIME message (an email.message.Message, `flatten` writes it);
        UnsafeHeader for a header value that cannot be sent."""
        check_headers(message)
        if _direct_shape(message):
            return self.direct(message_id, message)
        return await self.message(message_id, message)

    def direct(self, message_id: int, message: EmailMessage) -> bytes:
        """The bytes `flatten(self.message(...))` writes for a message of _direct_shape (the
        headers in the same order, each folded by the same policy), without building the
        email package's objects: base64 of each UTF-8 text in 76-column lines, as
        MIMEText(text, subtype, "utf-8") encodes it. The caller checked the headers."""
        token = secrets.token_hex(16)
        boundary = f"=_chorus_{token}"
        headers: list[tuple[str, str]] = [("Date", self._date())]
        if not message.from_name:
            headers.append(("From", self.from_header))
        if message.subject:
            headers.append(("Subject", message.subject))
        headers += message.headers.items()
        if message.reply_to:
            reply_to = (formataddr(pair, charset="utf-8") for pair in message.reply_to)
            headers.append(("Reply-To", ", ".join(reply_to)))
        if message.from_name:
            headers.append(("From", formataddr((message.from_name, self.sender), "utf-8")))
        headers.append(("To", formataddr((message.to_name or "", message.to), charset="utf-8")))
        headers.append(("Message-ID", f"<outbox-{message_id}@{self.domain}>"))
        chunks = [b"MIME-Version: 1.0\n", self.content_type.replace(_SAMPLE_TOKEN, token.encode())]
        chunks += [_QUICK_HEADERS.fold_binary(name, value) for name, value in headers]
        delimiter = f"\n--{boundary}\n".encode("ascii")
        chunks += [b"\n", delimiter[1:], _text_part(message.text, "plain")]
        chunks += [delimiter, _text_part(message.html, "html"), f"\n--{boundary}--\n".encode()]
        return b"".join(chunks)

    async def message(self, message_id: int, message: EmailMessage) -> Any:
        """The MIME message (an email.message.Message) of outbox message `message_id`, built
        by fastapi-mail and reshaped. The caller checked the headers."""
        # model_construct: every field is ours and already checked, and validation (which
        # runs email-validator on the recipient again) was a tenth of a message's CPU.
        schema = MessageSchema.model_construct(
            # fastapi-mail re-validates recipients and turns an IDNA domain back into Unicode,
            # which it then cannot encode: it gets the sender as a stand-in, and the real
            # recipient goes into the To header and the SMTP envelope below.
            recipients=[NameEmail("", self.sender)],
            subject=message.subject,
            body=message.text,
            alternative_body=message.html,
            subtype=MessageType.plain,
            multipart_subtype=MultipartSubtypeEnum.alternative,
            headers=message.headers or None,
        )
        mime: Any = unwrapped(await self.mailer.get_message(schema))
        if message.attachments:
            mime = with_attachments(mime, message.attachments)
        if message.reply_to:
            mime["Reply-To"] = ", ".join(
                formataddr(pair, charset="utf-8") for pair in message.reply_to
            )
        if message.from_name:
            del mime["From"]
            mime["From"] = formataddr((message.from_name, self.sender), "utf-8")
        del mime["To"]
        # formataddr encodes any name (commas, quotes, Hangul) safely (RFC 2047).
        mime["To"] = formataddr((message.to_name or "", message.to), charset="utf-8")
        # Our own MIME boundaries: the email package otherwise invents one per part and
        # compiles a regular expression to check it against the text (a third of the
        # CPU of sending a message). 128 random bits cannot occur in the text by chance.
        # fastapi-mail also gives each multipart a charset and "Content-Transfer-Encoding:
        # base64", which RFC 2045 forbids on a multipart (only 7bit, 8bit or binary): the
        # header goes and the content type is written anew.
        for part in mime.walk():
            if part.is_multipart():
                part.replace_header(
                    "Content-Type",
                    f'{part.get_content_type()}; boundary="=_chorus_{secrets.token_hex(16)}"',
                )
                del part["Content-Transfer-Encoding"]
        # A stable Message-ID: if a crash makes us send a message twice, receivers see one.
        del mime["Message-ID"]
        mime["Message-ID"] = f"<outbox-{message_id}@{self.domain}>"
        return mime
