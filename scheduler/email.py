"""E-mail over SMTP: the district contact's copy of every escalation and digest, and link codes.

``FIELDBOT_SMTP_URL`` says everything: ``smtp://user:pass@host:587?from=bot@example.org&starttls=1`` or
``smtps://...`` for implicit TLS (port 465). smtplib is blocking, so each message is sent in a worker thread;
a server that is down or slow is ``RetryLater`` (the outbox tries again), a refused address is
``Unreachable``. The password never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from core.ports import DeliveryError, RetryLater, Unreachable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20.0
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    sender: str
    timeout: float


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP URL phải có dạng smtp://user:pass@host:port?from=... (or smtps://)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    implicit_tls = parts.scheme == "smtps"
    starttls = query.get("starttls", "").lower() in _TRUE
    try:
        port = parts.port or (465 if implicit_tls else 587 if starttls else 25)
    except ValueError:
        raise ValueError("SMTP URL: cổng không hợp lệ (bad port)") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    sender = query.get("from") or (username if username and "@" in username else f"fieldbot@{parts.hostname}")
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise ValueError("SMTP URL: timeout phải là số giây") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=username,
        password=password,
        sender=sender,
        timeout=timeout,
    )


class SmtpMailer:
    """``await mailer.send(to, subject, body)``, or ``await mailer(to, subject, body)``."""

    def __init__(self, smtp_url: str) -> None:
        self.config = parse_smtp_url(smtp_url)

    def __repr__(self) -> str:
        c = self.config
        user = f"{c.username}:***@" if c.username else ""
        return f"SmtpMailer({'smtps' if c.implicit_tls else 'smtp'}://{user}{c.host}:{c.port}, from={c.sender})"

    async def __call__(self, to: str, subject: str, body: str) -> None:
        await self.send(to, subject, body)

    async def send(self, to: str, subject: str, body: str) -> None:
        message = self._message(to, subject, body)
        await asyncio.to_thread(self._send_sync, message)
        log.info("email sent to=%s subject=%r", _mask_email(to), subject)

    def _message(self, to: str, subject: str, body: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        msg.set_content(body, charset="utf-8")
        return msg

    def _send_sync(self, message: EmailMessage) -> None:
        c = self.config
        where = f"{c.host}:{c.port}"
        try:
            if c.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
            with smtp:
                smtp.ehlo()
                if c.starttls and not c.implicit_tls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, c.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Unreachable(f"SMTP {where} refused the address: {_codes(exc.recipients)}") from None
        except smtplib.SMTPAuthenticationError as exc:
            # A configuration problem: keep the mail owed and say so; the outbox retries with backoff.
            raise RetryLater(f"SMTP {where}: authentication failed ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise RetryLater(f"SMTP {where}: temporary failure {exc.smtp_code}") from None
            raise DeliveryError(f"SMTP {where}: rejected {exc.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ssl.SSLError, OSError) as exc:
            raise RetryLater(f"SMTP {where} unreachable: {type(exc).__name__}: {exc}") from None
        except smtplib.SMTPException as exc:
            raise RetryLater(f"SMTP {where}: {type(exc).__name__}") from None
        if refused:
            raise Unreachable(f"SMTP {where} refused the address: {_codes(refused)}")


def _codes(refused: dict) -> str:
    return ", ".join(f"{_mask_email(addr)} ({code})" for addr, (code, _msg) in refused.items())


def _mask_email(addr: str) -> str:
    """For logs: the domain and the first letter are enough to tell addresses apart."""
    local, at, domain = str(addr).partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"
