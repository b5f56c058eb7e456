"""Tests for privacy.mail.mailer: .eml files, SMTP delivery and configuration."""

from __future__ import annotations

import logging
import re
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from privacy.mail.mailer import (
    FileMailer,
    MailDeliveryError,
    OutgoingMail,
    SmtpMailer,
    build_message,
    mailer_from_config,
)

SENDER = "Integritetsteamet <noreply@consent.example.se>"
RECIPIENT = "åsa.öberg@example.se"
ASCII_RECIPIENT = "asa.oberg@example.se"
SUBJECT = "Bekräfta ditt samtycke – åäö ÅÄÖ"
TEXT = "Hej Åsa!\n\nDu har samtyckt till nyhetsbrev. Återkalla när som helst: ä, ö.\n"
HTML = "<p>Hej Åsa!</p><p>Du har samtyckt till nyhetsbrev – å ä ö.</p>"
UNSUBSCRIBE_URL = "https://consent.example.se/unsubscribe?token=" + "Zm9vYmFy" * 20
UNSUBSCRIBE_HEADERS = {
    "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>, <mailto:unsubscribe@consent.example.se>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def swedish_mail(to: str = ASCII_RECIPIENT) -> OutgoingMail:
    return OutgoingMail(
        to=to, subject=SUBJECT, text=TEXT, html=HTML, headers=UNSUBSCRIBE_HEADERS
    )


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def body_of(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_subtype() == subtype
    return crlf_to_lf(part.get_content())


def crlf_to_lf(text: str) -> str:
    """Message lines end in CRLF on disk and on the wire; compare with LF text."""
    return text.replace("\r\n", "\n")


def eml_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml"))


# --- FileMailer ---------------------------------------------------------------


def test_file_mailer_writes_a_readable_eml(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    FileMailer(outbox, SENDER).send(swedish_mail())

    [path] = eml_files(outbox)
    raw = path.read_bytes()
    msg = parse(raw)
    assert msg["From"] == SENDER
    assert msg["To"] == ASCII_RECIPIENT
    assert msg["Subject"] == SUBJECT
    assert (
        msg["Date"].datetime is not None
        and msg["Date"].datetime.utcoffset() is not None
    )
    assert re.fullmatch(r"<[^<>@\s]+@consent\.example\.se>", msg["Message-ID"])
    assert msg["List-Unsubscribe"] == UNSUBSCRIBE_HEADERS["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert body_of(msg, "plain") == TEXT
    assert body_of(msg, "html").rstrip("\n") == HTML
    # RFC 5322 on disk: CRLF line ends, 7-bit clean, no line over 998 octets.
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_file_mailer_keeps_the_unsubscribe_url_intact_on_one_line(
    tmp_path: Path,
) -> None:
    FileMailer(tmp_path, SENDER).send(swedish_mail())

    raw = eml_files(tmp_path)[0].read_bytes()
    assert f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>".encode() in raw
    assert b"=?utf-8?" not in raw.split(b"List-Unsubscribe:", 1)[1].split(b"\r\n", 1)[0]


def test_file_mailer_sends_text_only_mail_as_a_single_part(tmp_path: Path) -> None:
    FileMailer(tmp_path, SENDER).send(
        OutgoingMail(to=ASCII_RECIPIENT, subject="Åter", text=TEXT)
    )

    msg = parse(eml_files(tmp_path)[0].read_bytes())
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert crlf_to_lf(msg.get_content()) == TEXT


def test_file_mailer_files_are_private(tmp_path: Path) -> None:
    outbox = tmp_path / "nested" / "outbox"
    FileMailer(outbox, SENDER).send(swedish_mail())

    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    [path] = eml_files(outbox)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_mailer_names_sort_by_time_and_leave_no_temporary_files(
    tmp_path: Path,
) -> None:
    mailer = FileMailer(tmp_path, SENDER)
    subjects = [f"Meddelande {i}" for i in range(5)]
    for subject in subjects:
        mailer.send(OutgoingMail(to=ASCII_RECIPIENT, subject=subject, text=TEXT))

    files = eml_files(tmp_path)
    assert len(files) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        p.name for p in files
    ]  # no temp files
    for path in files:
        assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{32}\.eml", path.name)
    assert [parse(p.read_bytes())["Subject"] for p in files] == subjects


def test_file_mailer_logs_only_the_message_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="privacy")
    FileMailer(tmp_path, SENDER).send(swedish_mail(to=RECIPIENT))

    message_id = parse(eml_files(tmp_path)[0].read_bytes())["Message-ID"]
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("privacy")
    )
    assert message_id in logged
    for secret in (RECIPIENT, ASCII_RECIPIENT, "Hej", "Åsa", SUBJECT):
        assert secret not in logged


# --- build_message ------------------------------------------------------------


@pytest.mark.parametrize(
    "mail",
    [
        OutgoingMail(to="a@example.se\r\nBcc: evil@example.com", subject="s", text="t"),
        OutgoingMail(to="a@example.se", subject="s\nBcc: evil@example.com", text="t"),
        OutgoingMail(
            to="a@example.se", subject="s", text="t", headers={"X-Note": "a\r\nb"}
        ),
        OutgoingMail(
            to="a@example.se", subject="s", text="t", headers={"Bad Name": "x"}
        ),
        OutgoingMail(
            to="a@example.se", subject="s", text="t", headers={"Message-ID": "<x@y>"}
        ),
        OutgoingMail(
            to="a@example.se", subject="s", text="t", headers={"bcc": "x@y.se"}
        ),
        OutgoingMail(to="", subject="s", text="t"),
    ],
    ids=[
        "to-crlf",
        "subject-lf",
        "header-crlf",
        "header-name",
        "reserved",
        "bcc",
        "empty-to",
    ],
)
def test_build_message_refuses_header_injection_and_overrides(
    mail: OutgoingMail,
) -> None:
    with pytest.raises(ValueError) as excinfo:
        build_message(mail, SENDER)
    assert "evil@example.com" not in str(excinfo.value)


def test_build_message_refuses_a_sender_without_an_address() -> None:
    with pytest.raises(ValueError):
        build_message(swedish_mail(), "Integritetsteamet")


def test_build_message_gives_every_message_a_new_message_id() -> None:
    first = build_message(swedish_mail(), SENDER)["Message-ID"]
    second = build_message(swedish_mail(), SENDER)["Message-ID"]
    assert first != second


# --- SmtpMailer against a real local SMTP server ------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class RecordingHandler:
    """aiosmtpd handler that keeps what it receives; can refuse recipients."""

    received: list[Received] = field(default_factory=list)
    refuse_recipients: bool = False

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refuse_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int
    logins: list[tuple[str, str]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = RecordingHandler()
    logins: list[tuple[str, str]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        # handled=False: let aiosmtpd send the 235/535 reply itself.
        return AuthResult(success=data.password == b"hemligt l:sen!", handled=False)

    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,  # plain AUTH is fine on loopback in a test
    )
    controller.start()
    try:
        yield SmtpServer(handler, port, logins)
    finally:
        controller.stop()


def test_smtp_mailer_delivers_to_a_local_smtp_server(smtp_server: SmtpServer) -> None:
    SmtpMailer(f"smtp://127.0.0.1:{smtp_server.port}", SENDER, timeout=5).send(
        swedish_mail()
    )

    [received] = smtp_server.handler.received
    assert received.mail_from == "noreply@consent.example.se"
    assert received.rcpt_tos == [ASCII_RECIPIENT]
    msg = parse(received.content)
    assert msg["To"] == ASCII_RECIPIENT
    assert msg["Subject"] == SUBJECT
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body_of(msg, "plain") == TEXT
    assert body_of(msg, "html").rstrip("\n") == HTML


def test_smtp_mailer_logs_in_when_the_url_has_credentials(
    smtp_server: SmtpServer,
) -> None:
    url = (
        f"smtp://mailer%40example.se:hemligt%20l%3Asen%21@127.0.0.1:{smtp_server.port}"
    )
    SmtpMailer(url, SENDER, timeout=5).send(swedish_mail())

    assert smtp_server.logins == [("mailer@example.se", "hemligt l:sen!")]
    assert len(smtp_server.handler.received) == 1


def test_smtp_mailer_reports_a_rejected_login_as_delivery_error(
    smtp_server: SmtpServer,
) -> None:
    url = f"smtp://mailer:wrong@127.0.0.1:{smtp_server.port}"
    with pytest.raises(MailDeliveryError, match="535"):
        SmtpMailer(url, SENDER, timeout=5).send(swedish_mail())
    assert smtp_server.handler.received == []


def test_smtp_failure_names_neither_recipient_nor_server_reply(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="privacy")
    smtp_server.handler.refuse_recipients = True

    with pytest.raises(MailDeliveryError) as excinfo:
        SmtpMailer(f"smtp://127.0.0.1:{smtp_server.port}", SENDER, timeout=5).send(
            swedish_mail()
        )

    assert "550" in str(excinfo.value)
    assert ASCII_RECIPIENT not in str(excinfo.value)
    assert excinfo.value.__suppress_context__
    assert not any(ASCII_RECIPIENT in r.getMessage() for r in caplog.records)
    assert smtp_server.handler.received == []


def test_smtp_mailer_reports_an_unreachable_server_as_delivery_error() -> None:
    with pytest.raises(MailDeliveryError):
        SmtpMailer(f"smtp://127.0.0.1:{free_port()}", SENDER, timeout=5).send(
            swedish_mail()
        )


def test_smtp_mailer_logs_only_the_message_id(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="privacy")
    SmtpMailer(f"smtp://127.0.0.1:{smtp_server.port}", SENDER, timeout=5).send(
        swedish_mail()
    )

    message_id = parse(smtp_server.handler.received[0].content)["Message-ID"]
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("privacy")
    )
    assert message_id in logged
    for secret in (ASCII_RECIPIENT, "Hej", SUBJECT):
        assert secret not in logged


# --- SmtpMailer TLS modes and URL parsing (no real TLS server needed) ----------


class FakeSmtp:
    """Stands in for smtplib.SMTP / SMTP_SSL and records the calls made."""

    instances: ClassVar[list[FakeSmtp]] = []

    def __init__(
        self, host: str, port: int, timeout: float, context: Any = None
    ) -> None:
        self.connected = (host, port, timeout)
        self.tls_context = context
        self.calls: list[str] = []
        FakeSmtp.instances.append(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("quit")

    def starttls(self, context: Any = None) -> None:
        assert context is not None
        self.calls.append("starttls")

    def login(self, user: str, password: str) -> None:
        self.calls.append(f"login {user}")

    def send_message(
        self, msg: EmailMessage, from_addr: str, to_addrs: list[str]
    ) -> None:
        self.calls.append("send")


@pytest.fixture
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> type[FakeSmtp]:
    FakeSmtp.instances = []
    monkeypatch.setattr("privacy.mail.mailer.smtplib.SMTP", FakeSmtp)
    monkeypatch.setattr("privacy.mail.mailer.smtplib.SMTP_SSL", FakeSmtp)
    return FakeSmtp


@pytest.mark.parametrize(
    ("url", "expected_port", "implicit_tls", "calls"),
    [
        ("smtp://mail.example.se", 25, False, ["send", "quit"]),
        (
            "smtp://mail.example.se:2525?starttls=1",
            2525,
            False,
            ["starttls", "send", "quit"],
        ),
        (
            "smtp://u:p@mail.example.se:587?starttls=true",
            587,
            False,
            ["starttls", "login u", "send", "quit"],
        ),
        ("smtps://mail.example.se", 465, True, ["send", "quit"]),
        ("smtps://u:p@mail.example.se:4650", 4650, True, ["login u", "send", "quit"]),
        ("smtp://mail.example.se:25?starttls=0", 25, False, ["send", "quit"]),
    ],
)
def test_smtp_mailer_uses_the_tls_mode_and_port_the_url_asks_for(
    fake_smtp: type[FakeSmtp],
    url: str,
    expected_port: int,
    implicit_tls: bool,
    calls: list[str],
) -> None:
    SmtpMailer(url, SENDER, timeout=3).send(swedish_mail())

    [conn] = fake_smtp.instances
    assert conn.connected == ("mail.example.se", expected_port, 3)
    assert (conn.tls_context is not None) is implicit_tls
    assert conn.calls == calls


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.se",
        "smtp://",
        "smtp://mail.example.se:notaport",
        "smtp://mail.example.se/path",
        "smtp://mail.example.se?starttls=maybe",
        "smtp://mail.example.se?tls=1",
        "smtps://mail.example.se?starttls=1",
    ],
)
def test_smtp_mailer_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpMailer(url, SENDER)


def test_smtp_mailer_refuses_non_ascii_credentials_up_front() -> None:
    with pytest.raises(ValueError):
        SmtpMailer("smtp://user:l%C3%B6sen@mail.example.se", SENDER)


def test_smtp_mailer_repr_hides_the_password() -> None:
    mailer = SmtpMailer("smtp://user:topsecret@mail.example.se:587?starttls=1", SENDER)
    assert "topsecret" not in repr(mailer)
    assert "topsecret" not in str(mailer)


# --- configuration -------------------------------------------------------------


def test_mailer_from_config_picks_smtp_when_a_url_is_given(tmp_path: Path) -> None:
    mailer = mailer_from_config(
        "smtp://mail.example.se:587?starttls=1", tmp_path / "mail", SENDER
    )
    assert isinstance(mailer, SmtpMailer)
    assert not (tmp_path / "mail").exists()


@pytest.mark.parametrize("smtp_url", [None, "", "   "])
def test_mailer_from_config_falls_back_to_files_without_a_url(
    tmp_path: Path, smtp_url: str | None
) -> None:
    mailer = mailer_from_config(smtp_url, tmp_path / "mail", SENDER)
    assert isinstance(mailer, FileMailer)
    assert mailer.directory == tmp_path / "mail"
