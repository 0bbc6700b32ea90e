"""The web view in a real browser: Debian's headless Chromium (/usr/bin/chromium, installed by .ci/run) driven
by Playwright; nothing is downloaded at run time. Signs in with a one-time link, reads the overview's numbers,
opens a school, sees a thumbnail, downloads the workbook, saves phone- and desk-width screenshots under the
test's output folder; the same link used again and an expired link are refused. The Mini App signs in inside a
cross-site iframe of web.telegram.org over https, with third-party cookies blocked."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from datetime import timedelta

import openpyxl
import pytest
from aiohttp import web

from bot.web.app import build_web_app
from conversations.forms.web import sign_in_link
from tests.web_helpers import link_for, seed_web, web_config

CHROMIUM = os.environ.get("FIELDBOT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1366, "height": 900}

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("CI"),
    reason="no /usr/bin/chromium (apt-get install chromium)",
)


class Server:
    """The web app on a free local port, in its own thread and event loop (Playwright's sync API owns the test's);
    over TLS when given an ``ssl_context``."""

    def __init__(self, app: web.Application, ssl_context=None) -> None:
        self.app, self.port, self.ssl_context = app, 0, ssl_context
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(10)
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def wait_true(page, js: str, timeout: float = 15.0) -> None:
    """Poll with page.evaluate (DevTools, outside the page's CSP): wait_for_function would eval() in the page,
    which our Content-Security-Policy rightly forbids."""
    import time

    end = time.monotonic() + timeout
    while not page.evaluate(js):
        if time.monotonic() > end:
            raise AssertionError(f"never true: {js}")
        page.wait_for_timeout(50)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_officer_signs_in_and_reads_the_district(sqlite_engine, sqlite_world, clock, programme, tmp_path, browser):
    media = tmp_path / "media"
    web_world = seed_web(sqlite_engine, sqlite_world, now=clock.now(), programme=programme, media_dir=media)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    cfg = web_config(sqlite_engine, programme, clock, media)
    with Server(build_web_app(cfg)) as base:
        cfg.public_url = base
        url = sign_in_link(base, link_for(sqlite_engine, sqlite_world.officer, clock))

        ctx = browser.new_context(viewport=PHONE, accept_downloads=True, locale="vi-VN")
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.click("#sign-in")
        page.wait_for_url(f"{base}/")
        # The seed: 7 registrations standing (5 approved), 10 computers received, 4 handed over, 2 late.
        assert page.inner_text("#t-registered") == "7"
        assert page.inner_text("#t-approved") == "5"
        assert page.inner_text("#t-received") == "10"
        assert page.inner_text("#t-handed") == "4"
        assert page.inner_text("#t-late") == "2"
        assert page.inner_text("#t-reports") == "1/2"
        assert page.locator("#schools tbody tr").count() == 2
        assert "Ngoại Phạm Vi" not in page.content()
        # Who to call for the late school: the principal's tel: link.
        assert page.locator('#schools a[href="tel:+84901000001"]').count() == 1
        wait_true(page, "document.querySelector('.chart img').complete")
        assert page.evaluate("document.querySelector('.chart img').naturalWidth") > 0
        # Sort by late, descending, then filter to the late schools only.
        page.select_option("select[name=sort]", "late")
        page.select_option("select[name=dir]", "desc")
        page.click(".filters button")
        assert page.locator("#schools tbody tr").count() == 2
        assert "Chu Văn An" in page.inner_text("#schools tbody tr >> nth=0")  # ties keep name order; B is first
        page.select_option("select[name=show]", "no_report")
        page.click(".filters button")
        assert page.locator("#schools tbody tr").count() == 1
        assert "Phú Hòa 1" in page.inner_text("#schools tbody")
        page.goto(f"{base}/")
        page.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
        # The page fits a phone: nothing but the table scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1

        page.set_viewport_size(DESK)
        page.screenshot(path=str(shots / "overview-desk.png"), full_page=True)

        # Download the workbook the page offers.
        with page.expect_download() as info:
            page.click("text=Tải tệp Excel")
        saved = tmp_path / "download.xlsx"
        info.value.save_as(saved)
        assert info.value.suggested_filename.startswith("tong-hop-tdm-")
        wb = openpyxl.load_workbook(saved, read_only=True)
        assert wb.sheetnames == ["Nhu cầu", "Tiếp nhận", "Bàn giao", "Tổng hợp"]

        # Open a school: pupils, a thumbnail that loads, and the photo behind it.
        page.set_viewport_size(PHONE)
        page.click("#schools a >> text=Phú Hòa 1")
        page.wait_for_selector("img.thumb")
        wait_true(page, "[...document.querySelectorAll('img.thumb')].every(i => i.complete)")
        assert page.evaluate("document.querySelector('img.thumb').naturalWidth") > 0
        assert page.locator("#pupils tbody tr").count() == 7
        assert "Ảnh dùng lại" in page.content()
        page.screenshot(path=str(shots / "school-phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
        page.set_viewport_size(DESK)
        page.screenshot(path=str(shots / "school-desk.png"), full_page=True)
        href = page.get_attribute("img.thumb >> xpath=..", "href")
        photo = page.request.get(f"{base}{href}")
        assert photo.status == 200 and photo.headers["content-type"] == "image/jpeg"

        page.set_viewport_size(PHONE)
        page.goto(f"{base}/late")
        page.screenshot(path=str(shots / "late-phone.png"), full_page=True)
        assert page.locator("#late tbody tr").count() >= 2
        assert not [e for e in errors if "Content Security Policy" in e], errors

        # Sign out: the cookie no longer opens anything.
        page.goto(f"{base}/")
        page.click("text=Đăng xuất")
        assert "đã đăng xuất" in page.content()
        assert page.goto(f"{base}/late").status == 401
        ctx.close()

        # The same link again, in a fresh browser set to Vietnamese: refused, in Vietnamese.
        again = browser.new_context(viewport=PHONE, locale="vi-VN")
        p2 = again.new_page()
        resp = p2.goto(url)
        assert resp.status == 410 and "đã được dùng" in p2.content()
        assert p2.goto(f"{base}/").status == 401
        again.close()

        # An expired link: refused; before sign-in a browser that prefers English (en-US) reads English.
        late_url = sign_in_link(base, link_for(sqlite_engine, sqlite_world.officer, clock))
        clock.advance(timedelta(minutes=11))
        third = browser.new_context(viewport=PHONE, locale="en-US")
        p3 = third.new_page()
        resp = p3.goto(late_url)
        assert resp.status == 410 and "has expired" in p3.content()
        assert p3.get_attribute("html", "lang") == "en"
        third.close()
    for name in ("overview-phone.png", "overview-desk.png", "school-phone.png", "school-desk.png"):
        assert (shots / name).stat().st_size > 5000
    _ = web_world


def test_province_officer_drills_down(sqlite_engine, sqlite_world, clock, programme, tmp_path, browser) -> None:
    from tests.web_helpers import PROVINCE_PHONE

    media = tmp_path / "media"
    web_world = seed_web(sqlite_engine, sqlite_world, now=clock.now(), programme=programme, media_dir=media)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    cfg = web_config(sqlite_engine, programme, clock, media)
    with Server(build_web_app(cfg)) as base:
        url = sign_in_link(base, link_for(sqlite_engine, web_world.province_officer, clock))
        ctx = browser.new_context(viewport=PHONE)
        page = ctx.new_page()
        page.goto(url)
        page.click("#sign-in")
        page.wait_for_url(f"{base}/")
        assert "Tỉnh Bình Dương" in page.inner_text("h1")
        assert page.locator("#districts tbody tr").count() == 1
        assert page.inner_text("#t-approved") == "5"
        page.screenshot(path=str(shots / "province-phone.png"), full_page=True)
        page.click("#districts a >> text=Thủ Dầu Một")
        assert page.locator("#schools tbody tr").count() == 2
        assert page.goto(f"{base}/school/{sqlite_world.school_other}").status == 404
        ctx.close()
    assert PROVINCE_PHONE


# --- the Mini App inside Telegram's web client: a cross-site iframe, third-party cookies blocked ---------------------

MINI_APP_HOST = "fieldbot.test"  # another site than web.telegram.org: the iframe is cross-site
BOT_TOKEN = "123456:AAH-test-token-for-the-mini-app"


def self_signed(tmp_path, host: str):
    """A TLS context for ``host`` with a throw-away self-signed certificate (the browser context ignores the
    certificate error; what matters is that the page is https, so Secure and SameSite=None cookies apply)."""
    import ssl
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def test_mini_app_in_telegrams_web_client(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    """web.telegram.org (here a page Playwright serves at that address) frames the Mini App from another site.
    Chromium runs with third-party cookies blocked: a Lax cookie is neither stored nor sent in that iframe, so
    the page after the initData sign-in had no session; the Partitioned (CHIPS) cookie is kept and sent."""
    import json
    from urllib.parse import urlencode

    from playwright.sync_api import sync_playwright

    from bot.web.initdata import sign
    from storage.db import session_scope
    from storage.models import ChatIdentity, School

    with session_scope(sqlite_engine) as s:
        s.add(
            ChatIdentity(
                staff_id=sqlite_world.principal_a,
                channel="telegram",
                external_id="777",
                chat_id="777",
                linked_at=clock.now(),
            )
        )
        school_name = s.get(School, sqlite_world.school_a).name
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": 777, "first_name": "Lan", "language_code": "vi"}, separators=(",", ":")),
        "auth_date": str(int(clock.now().timestamp())),
    }
    fields["hash"] = sign(fields, BOT_TOKEN)
    stub = f"window.Telegram = {{WebApp: {{initData: {json.dumps(urlencode(fields))}, ready: function () {{}}}}}};"

    cfg = web_config(sqlite_engine, programme, clock, tmp_path / "media", telegram_token=BOT_TOKEN)
    with Server(build_web_app(cfg), ssl_context=self_signed(tmp_path, MINI_APP_HOST)) as base:
        port = base.rsplit(":", 1)[1]
        origin = f"https://{MINI_APP_HOST}:{port}"
        cfg.public_url = origin
        args = [
            *ARGS,
            f"--host-resolver-rules=MAP {MINI_APP_HOST} 127.0.0.1",
            "--test-third-party-cookie-phaseout",  # third-party cookies blocked, as browsers are heading
            # The real fieldbot has a public address; here it is 127.0.0.1, which a public page may not frame.
            "--disable-features=LocalNetworkAccessChecks",
        ]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
            ctx = browser.new_context(viewport=PHONE, ignore_https_errors=True, locale="vi-VN")
            page = ctx.new_page()
            page.route(
                "https://web.telegram.org/**",
                lambda route: route.fulfill(
                    content_type="text/html",
                    body=f'<!doctype html><iframe id="app" src="{origin}/tg" width="390" height="700"></iframe>',
                ),
            )
            page.route(
                "https://telegram.org/js/telegram-web-app.js",
                lambda route: route.fulfill(content_type="application/javascript", body=stub),
            )
            page.goto("https://web.telegram.org/k/")
            for _ in range(100):  # /tg -> tg.js posts initData -> /tg/login -> / -> /school/{id}
                if "/school/" in page.frames[-1].url:
                    break
                page.wait_for_timeout(100)
            frame = page.frames[-1]
            assert frame.url.startswith(f"{origin}/school/"), (frame.url, frame.inner_text("body"))
            assert frame.inner_text("h1") == school_name
            assert frame.locator("#pupils").count() == 1
            # The session lives in web.telegram.org's partition only: the same site opened on its own has none.
            alone = ctx.new_page()
            assert alone.goto(f"{origin}/late").status == 401
            browser.close()
