"""Outgoing e-mail: an RFC 5322 message builder and two delivery back-ends.

``FileMailer`` drops each message as an ``.eml`` file into a directory (for
development, tests and air-gapped installs); ``SmtpMailer`` hands it to an
SMTP server. Both build the message with :func:`build_message`.

Recipient addresses and message bodies are personal data: nothing in this
module logs them or puts them into exception messages. Only the Message-ID
is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "FileMailer",
    "MailDeliveryError",
    "Mailer",
    "OutgoingMail",
    "SmtpMailer",
    "build_message",
    "mailer_from_config",
]

log = logging.getLogger(__name__)

# Headers build_message sets itself; callers may not override them via
# OutgoingMail.headers.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


class _MailPolicy(EmailPolicy):
    """CRLF policy that never mangles long ASCII header values.

    The stdlib folder turns an over-long unbreakable token (such as a
    ``List-Unsubscribe`` URL) into RFC 2047 encoded-words, which breaks
    RFC 8058 one-click unsubscribe. ASCII values are therefore only folded at
    the hard RFC 5322 limit of 998 characters; non-ASCII values keep normal
    folding so that encoded-words stay short.

    ``max_line_length`` is 76 rather than 78 because the same policy drives
    quoted-printable body encoding, whose lines RFC 2045 limits to 76.
    """

    def fold(self, name: str, value: str) -> str:
        if str(value).isascii():
            return cast(
                str, EmailPolicy.fold(self.clone(max_line_length=998), name, value)
            )
        return cast(str, super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if str(value).isascii():
            return EmailPolicy.fold_binary(self.clone(max_line_length=998), name, value)
        return super().fold_binary(name, value)


_POLICY = _MailPolicy(linesep="\r\n", max_line_length=76)


@dataclass(frozen=True)
class OutgoingMail:
    """One message to one recipient; ``headers`` are extra header fields."""

    to: str
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    """Anything that can deliver an :class:`OutgoingMail`."""

    def send(self, mail: OutgoingMail) -> None:
        """Deliver ``mail`` or raise."""
        ...


class MailDeliveryError(RuntimeError):
    """SMTP delivery failed. The message names no recipient (personal data)."""


def _address_of(sender: str) -> str:
    """Return the bare address of ``sender`` (``"Name <a@b>"`` or ``"a@b"``)."""
    address = parseaddr(sender)[1]
    if "@" not in address or any(c in sender for c in "\r\n"):
        raise ValueError(
            "sender must be an e-mail address, optionally with a display name"
        )
    return address


def _check_header_value(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"value of header {name!r} must be str")
    if "\r" in value or "\n" in value:
        # Do not echo the value: it may be personal data.
        raise ValueError(f"value of header {name!r} contains a line break")


def build_message(mail: OutgoingMail, sender: str) -> EmailMessage:
    """Build the RFC 5322 message for ``mail`` sent from ``sender``.

    Sets Date (UTC), Message-ID, From, To, Subject, the extra headers, a UTF-8
    text/plain part and, if ``mail.html`` is set, a text/html alternative.
    Bodies are quoted-printable so the message is 7-bit clean.
    """
    domain = _address_of(sender).rpartition("@")[2]
    if not mail.to or not parseaddr(mail.to)[1]:
        raise ValueError("recipient address is empty or unparseable")
    _check_header_value("To", mail.to)
    _check_header_value("Subject", mail.subject)
    for name, value in mail.headers.items():
        if (
            not name
            or not name.isascii()
            or not name.isprintable()
            or ":" in name
            or " " in name
        ):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(
                f"header {name!r} is set by build_message and cannot be overridden"
            )
        _check_header_value(name, value)

    msg = EmailMessage(policy=_POLICY)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if mail.html is not None:
        msg.add_alternative(
            mail.html, subtype="html", charset="utf-8", cte="quoted-printable"
        )
    return msg


class FileMailer:
    """Write each mail as an ``.eml`` file into a directory (mode 0700).

    File names sort by creation time, e.g.
    ``20261122T102233.123456Z-<uuid hex>.eml``; files are written atomically
    (temporary file + ``os.replace``) with mode 0600.
    """

    def __init__(self, directory: Path, sender: str) -> None:
        _address_of(sender)
        self.directory = Path(directory)
        self.sender = sender
        self._ensure_directory()

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def send(self, mail: OutgoingMail) -> None:
        """Write ``mail`` to a new ``.eml`` file in the directory."""
        msg = build_message(mail, self.sender)
        data = msg.as_bytes()
        self._ensure_directory()
        now = datetime.now(UTC)
        final = self.directory / f"{now:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}.eml"
        # The dot prefix keeps half-written files out of "*.eml" globs.
        fd, tmp_name = tempfile.mkstemp(
            prefix=".", suffix=".eml.tmp", dir=self.directory
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_directory(self.directory)
        log.info("mail %s written to the mail directory", msg["Message-ID"])


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SmtpMailer:
    """Send mail through an SMTP server given as a URL.

    ``smtp://host:port`` (plain), ``smtp://host:port?starttls=1`` (STARTTLS),
    ``smtps://host:port`` (implicit TLS); ``user:password@`` (percent-encoded)
    before the host enables AUTH. Default ports: 25 for smtp, 465 for smtps.
    TLS uses the system trust store with certificate and host name checks.
    """

    def __init__(self, url: str, sender: str, timeout: float = 10) -> None:
        self._envelope_from = _address_of(sender)
        self.sender = sender
        self.timeout = timeout
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        if parts.path not in ("", "/"):
            raise ValueError("SMTP URL must not have a path")
        self.host: str = parts.hostname
        self.implicit_tls: bool = parts.scheme == "smtps"
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP URL has an invalid port") from None
        self.port: int = (
            port if port is not None else (465 if self.implicit_tls else 25)
        )
        self.username: str | None = (
            unquote(parts.username) if parts.username is not None else None
        )
        self._password: str = (
            unquote(parts.password) if parts.password is not None else ""
        )
        if not ((self.username or "").isascii() and self._password.isascii()):
            # smtplib encodes AUTH credentials as ASCII and would fail at send time.
            raise ValueError("SMTP user name and password must be ASCII")

        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        unknown = set(query) - {"starttls"}
        if unknown:
            raise ValueError(
                f"unknown SMTP URL parameter(s): {', '.join(sorted(unknown))}"
            )
        self.starttls: bool = False
        if "starttls" in query:
            value = query["starttls"][-1].strip().lower()
            if value in _TRUE:
                self.starttls = True
            elif value not in _FALSE:
                raise ValueError("starttls must be 1/0, true/false, yes/no or on/off")
        if self.starttls and self.implicit_tls:
            raise ValueError("starttls makes no sense with smtps:// (already TLS)")

    def __repr__(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username is not None else ""
        tls = "?starttls=1" if self.starttls else ""
        return f"SmtpMailer({scheme}://{user}{self.host}:{self.port}{tls})"

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def send(self, mail: OutgoingMail) -> None:
        """Deliver ``mail``; raise :class:`MailDeliveryError` on SMTP failure."""
        msg = build_message(mail, self.sender)
        message_id = msg["Message-ID"]
        envelope_to = parseaddr(mail.to)[1]
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self._password)
                smtp.send_message(
                    msg, from_addr=self._envelope_from, to_addrs=[envelope_to]
                )
        except OSError as exc:  # smtplib.SMTPException is an OSError
            # Server replies and SMTPRecipientsRefused carry the recipient
            # address: report only the exception type and reply code.
            raise MailDeliveryError(
                f"SMTP delivery of {message_id} failed: {_describe(exc)}"
            ) from None
        log.info(
            "mail %s handed to SMTP server %s:%s", message_id, self.host, self.port
        )


def _describe(exc: OSError) -> str:
    """Describe ``exc`` without any text that may contain an address."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"recipient refused (codes {', '.join(map(str, codes))})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} (code {exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPException):
        return type(exc).__name__
    detail = exc.strerror or ""
    return f"{type(exc).__name__} {detail}".strip()


def mailer_from_config(smtp_url: str | None, mail_dir: Path, sender: str) -> Mailer:
    """Return an :class:`SmtpMailer` if ``smtp_url`` is set, else a :class:`FileMailer`."""
    if smtp_url and smtp_url.strip():
        return SmtpMailer(smtp_url.strip(), sender)
    return FileMailer(mail_dir, sender)
