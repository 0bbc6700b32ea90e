"""SmtpMailer against a real SMTP server (aiosmtpd) on 127.0.0.1: delivery, login, refusals, server down."""

from __future__ import annotations

import email
import socket
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.ports import RetryLater, Unreachable
from scheduler.email import SmtpMailer, parse_smtp_url

PASSWORD = "p@ss:w/rd%"
PASSWORD_IN_URL = "p%40ss%3Aw%2Frd%25"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=default_policy)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bot" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_sends_utf8_mail_to_a_local_server(smtp_server):
    inbox, port = smtp_server
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}?from=fieldbot@tptdm.edu.vn&timeout=5")
    await mailer.send(
        "leminhtien@tptdm.edu.vn",
        "Báo cáo vượt cấp: 3 bàn giao quá hạn",
        "Trường Tiểu học Phú Hòa 1: Trần Thị Bích (lớp 6A1)",
    )
    [(sender, rcpts, msg)] = inbox.messages
    assert sender == "fieldbot@tptdm.edu.vn" and rcpts == ["leminhtien@tptdm.edu.vn"]
    assert msg["Subject"] == "Báo cáo vượt cấp: 3 bàn giao quá hạn"
    assert "Trần Thị Bích" in msg.get_content()
    assert msg["Message-ID"] and msg["Date"]


async def test_logs_in_with_a_percent_encoded_password_and_is_callable(smtp_server):
    inbox, port = smtp_server
    mailer = SmtpMailer(f"smtp://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?from=bot@example.org")
    await mailer("lan@phuhoa1.example", "Mã liên kết", "Mã của bạn: 123456")  # as the conversation engine calls it
    assert [r for _, r, _ in inbox.messages] == [["lan@phuhoa1.example"]]


async def test_wrong_password_is_retry_later_and_never_shows_the_password(smtp_server, caplog):
    _, port = smtp_server
    mailer = SmtpMailer(f"smtp://bot:wrong-secret@127.0.0.1:{port}?timeout=5")
    with pytest.raises(RetryLater) as err:
        await mailer.send("a@example.org", "x", "y")
    assert "authentication failed" in str(err.value)
    assert "wrong-secret" not in str(err.value) and "wrong-secret" not in repr(mailer)
    assert "wrong-secret" not in caplog.text


async def test_refused_address_is_unreachable(smtp_server):
    _, port = smtp_server
    with pytest.raises(Unreachable, match="refused"):
        await SmtpMailer(f"smtp://127.0.0.1:{port}").send("nobody@example.org", "x", "y")


async def test_server_down_is_retry_later():
    port = free_port()  # nothing listens there
    with pytest.raises(RetryLater, match="unreachable"):
        await SmtpMailer(f"smtp://127.0.0.1:{port}?timeout=2").send("a@example.org", "x", "y")


def test_url_options():
    c = parse_smtp_url("smtps://user%40x.org:secret@mail.example.org")
    assert (c.port, c.implicit_tls, c.starttls, c.username, c.password, c.sender) == (
        465,
        True,
        False,
        "user@x.org",
        "secret",
        "user@x.org",
    )
    c = parse_smtp_url("smtp://mail.example.org?starttls=1&from=bot@example.org")
    assert (c.port, c.starttls, c.sender, c.username) == (587, True, "bot@example.org", None)
    assert parse_smtp_url("smtp://mail.example.org:2525").sender == "fieldbot@mail.example.org"
    assert "secret" not in repr(SmtpMailer("smtp://u:secret@mail.example.org"))
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.example.org")


async def test_escalation_email_waits_for_smtp_and_telegram_is_not_repeated(sqlite_engine, sqlite_world, programme):
    """The real mailer in the outbox: SMTP down at first, the Telegram copy goes, the e-mail follows once the
    server is up, and the chat is not sent twice."""
    from datetime import date, timedelta

    from core.clock import FixedClock
    from core.vocabulary import NotificationStatus
    from scheduler.delivery import Deliverer
    from scheduler.sweep import sweep
    from tests.factories import add_handover, link, local, rows
    from tests.fakes.recording import RecordingSender

    add_handover(
        sqlite_engine,
        programme,
        school_id=sqlite_world.school_a,
        recorded_by=sqlite_world.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    chat = link(sqlite_engine, staff_id=sqlite_world.officer, linked_at=local(2021, 11, 1))
    port = free_port()
    tg = RecordingSender("telegram")
    clock = FixedClock(local(2021, 11, 19, 7))
    d = Deliverer(
        db=sqlite_engine,
        programme=programme,
        clock=clock,
        senders={"telegram": tg},
        mailer=SmtpMailer(f"smtp://127.0.0.1:{port}?from=fieldbot@tptdm.edu.vn&timeout=3"),
    )
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await d.deliver_due()
    [late] = rows(sqlite_engine, rule="csdl", stage="late")
    assert (late.status, late.channels_done) == (NotificationStatus.PENDING, "telegram")
    assert "SMTP 127.0.0.1" in late.last_error

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.advance(timedelta(minutes=1))
        await d.deliver_due()
    finally:
        controller.stop()
    [late] = rows(sqlite_engine, rule="csdl", stage="late")
    assert (late.status, late.channels_done, late.attempts) == (NotificationStatus.SENT, "email,telegram", 2)
    mails = [m for _, rcpt, m in inbox.messages if rcpt == ["leminhtien@tptdm.edu.vn"]]
    assert any("CSDL" in m["Subject"] for m in mails)
    assert len([t for t in tg.texts(chat) if "Báo cáo vượt cấp" in t]) == 1
