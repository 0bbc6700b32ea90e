"""SmtpMailer over TLS against a local aiosmtpd server with a certificate from a throwaway CA (trustme):
implicit TLS (smtps://, port 465 style) and STARTTLS with login; an untrusted certificate is refused."""

from __future__ import annotations

import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller

from core.ports import RetryLater
from scheduler.email import SmtpMailer
from tests.test_email import PASSWORD, PASSWORD_IN_URL, Inbox, authenticator, free_port


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def server_tls(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def trust(ca, tmp_path, monkeypatch):
    """The mailer trusts the system's CAs (ssl.create_default_context); OpenSSL reads SSL_CERT_FILE for them."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def serve(controller: Controller):
    controller.start()
    return controller


async def test_smtps_implicit_tls_with_login(server_tls, trust) -> None:
    inbox, port = Inbox(), free_port()
    # auth_require_tls=False: aiosmtpd only counts STARTTLS as TLS; here the whole connection is TLS already.
    controller = serve(
        Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            ssl_context=server_tls,
            authenticator=authenticator,
            auth_require_tls=False,
        )
    )
    try:
        mailer = SmtpMailer(f"smtps://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?from=bot@example.org&timeout=5")
        await mailer.send("leminhtien@tptdm.edu.vn", "Bản tin hằng ngày", "Trường Tiểu học Phú Hòa 1: 2 bàn giao")
    finally:
        controller.stop()
    [(_, rcpts, msg)] = inbox.messages
    assert rcpts == ["leminhtien@tptdm.edu.vn"] and "Phú Hòa 1" in msg.get_content()


async def test_starttls_is_required_before_the_password_and_works(server_tls, trust) -> None:
    inbox, port = Inbox(), free_port()
    controller = serve(
        Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_tls,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )
    )
    try:
        plain = SmtpMailer(f"smtp://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?timeout=5")  # no starttls=1
        with pytest.raises(RetryLater) as err:  # the server insists on TLS first: the mail stays owed
            await plain.send("a@example.org", "x", "y")
        assert PASSWORD not in str(err.value)
        mailer = SmtpMailer(f"smtp://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?starttls=1&from=bot@example.org&timeout=5")
        await mailer.send("lan@phuhoa1.example", "Mã liên kết", "Mã của bạn: 123456")
    finally:
        controller.stop()
    assert [r for _, r, _ in inbox.messages] == [["lan@phuhoa1.example"]]


@pytest.mark.parametrize("scheme", ["smtps", "starttls"])
async def test_an_untrusted_certificate_is_refused_before_the_password(server_tls, scheme) -> None:
    """No SSL_CERT_FILE: the throwaway CA is not trusted, so nothing (and no password) is sent."""
    inbox, port = Inbox(), free_port()
    kwargs = {"ssl_context": server_tls} if scheme == "smtps" else {"tls_context": server_tls, "require_starttls": True}
    controller = serve(
        Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            authenticator=authenticator,
            auth_require_tls=scheme != "smtps",
            **kwargs,
        )
    )
    url = (
        f"smtps://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?timeout=5"
        if scheme == "smtps"
        else f"smtp://bot:{PASSWORD_IN_URL}@127.0.0.1:{port}?starttls=1&timeout=5"
    )
    try:
        with pytest.raises(RetryLater, match="SSL|certificate") as err:
            await SmtpMailer(url).send("a@example.org", "x", "y")
    finally:
        controller.stop()
    assert inbox.messages == [] and PASSWORD not in str(err.value)
