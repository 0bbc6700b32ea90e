"""Signing in to the web view: one-time links (used once, 10 minutes, refused after), the session cookie's
attributes, the rate limit, and the Telegram Mini App's initData (valid, tampered, stale, another bot's)."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import PRE_COOKIE, SESSION_COOKIE
from bot.web.initdata import InitDataError, sign, validate_init_data
from storage.db import session_scope
from storage.models import ChatIdentity
from storage.web import csrf_for
from tests.web_helpers import link_for, make_app

BOT_TOKEN = "123456:AAH-test-token-for-the-mini-app"
OTHER_BOT = "654321:AAH-another-bot-entirely"


def init_data(user_id: int, auth_date: int, token: str = BOT_TOKEN, **extra: str) -> str:
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": user_id, "first_name": "Lan", "language_code": "vi"}, separators=(",", ":")),
        "auth_date": str(auth_date),
        **extra,
    }
    fields["hash"] = sign(fields, token)
    return urlencode(fields)


async def started(app) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def sign_in_with(client: TestClient, token: str):
    """What the browser does: open the link (GET shows the button), then press it (POST)."""
    page = await client.get(f"/login/{token}")
    if page.status != 200:
        return page
    pre = client.session.cookie_jar.filter_cookies(client.make_url("/"))[PRE_COOKIE].value
    return await client.post("/login", data={"token": token, "csrf": csrf_for(pre)}, allow_redirects=False)


# --- initData, as Telegram documents it ----------------------------------------------------------------------


def test_valid_init_data(clock) -> None:
    now = clock.now()
    user = validate_init_data(init_data(777, int(now.timestamp()) - 30), bot_token=BOT_TOKEN, now=now)
    assert user.id == 777 and user.first_name == "Lan"


def test_signature_field_takes_part_in_the_hash(clock) -> None:
    """Every field but ``hash`` is in the data-check-string, the newer ``signature`` one included."""
    now = clock.now()
    raw = init_data(777, int(now.timestamp()), signature="abc")
    assert validate_init_data(raw, bot_token=BOT_TOKEN, now=now).id == 777
    with pytest.raises(InitDataError):
        validate_init_data(raw.replace("signature=abc", "signature=abd"), bot_token=BOT_TOKEN, now=now)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda raw: raw.replace("%22id%22%3A777", "%22id%22%3A778"), "hash"),  # another user id
        (lambda raw: raw.replace("first_name%22%3A%22Lan", "first_name%22%3A%22Lam"), "hash"),
        (lambda raw: raw[: raw.index("hash=") + 5] + "0" * 64, "hash"),
        (lambda raw: raw[: raw.index("&hash=")], "missing"),
        (lambda raw: raw + "&auth_date=1", "hash"),  # a repeated key
        (lambda raw: "", "missing"),
    ],
)
def test_tampered_init_data_is_refused(clock, mutate, reason: str) -> None:
    now = clock.now()
    raw = mutate(init_data(777, int(now.timestamp())))
    with pytest.raises(InitDataError) as info:
        validate_init_data(raw, bot_token=BOT_TOKEN, now=now)
    assert info.value.reason == reason


def test_stale_and_future_init_data_are_refused(clock) -> None:
    now = clock.now()
    with pytest.raises(InitDataError, match="stale"):
        validate_init_data(init_data(777, int((now - timedelta(hours=2)).timestamp())), bot_token=BOT_TOKEN, now=now)
    with pytest.raises(InitDataError, match="future"):
        validate_init_data(init_data(777, int((now + timedelta(hours=1)).timestamp())), bot_token=BOT_TOKEN, now=now)


def test_another_bots_init_data_is_refused(clock) -> None:
    now = clock.now()
    with pytest.raises(InitDataError, match="hash"):
        validate_init_data(init_data(777, int(now.timestamp()), token=OTHER_BOT), bot_token=BOT_TOKEN, now=now)


def test_hash_without_user_is_refused(clock) -> None:
    now = clock.now()
    fields = {"auth_date": str(int(now.timestamp())), "query_id": "x"}
    fields["hash"] = sign(fields, BOT_TOKEN)
    with pytest.raises(InitDataError, match="user"):
        validate_init_data(urlencode(fields), bot_token=BOT_TOKEN, now=now)


# --- one-time links ----------------------------------------------------------------------------------------------


async def test_link_signs_in_once(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        resp = await sign_in_with(client, token)
        assert resp.status == 303 and resp.headers["Location"] == "/"
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
        assert int(cookie["max-age"]) == 12 * 3600
        assert not cookie["secure"]  # http:// in this test; https:// gets Secure (below)
        assert (await client.get("/late")).status == 200
    finally:
        await client.close()
    second = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        resp = await second.get(f"/login/{token}")
        assert resp.status == 410 and "đã được dùng" in await resp.text()
        assert (await second.get("/late")).status == 401
    finally:
        await second.close()


async def test_link_used_twice_at_once_opens_one_session(sqlite_engine, sqlite_world, clock, programme, tmp_path):
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    first = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    second = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        # Both have opened the page (the button is shown to both); then both press it.
        pages = [await c.get(f"/login/{token}") for c in (first, second)]
        assert [p.status for p in pages] == [200, 200]
        results = []
        for c in (first, second):
            pre = c.session.cookie_jar.filter_cookies(c.make_url("/"))[PRE_COOKIE].value
            results.append(await c.post("/login", data={"token": token, "csrf": csrf_for(pre)}, allow_redirects=False))
        assert [r.status for r in results] == [303, 410]
    finally:
        await first.close()
        await second.close()


async def test_expired_link_is_refused(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    clock.advance(timedelta(minutes=10, seconds=1))
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        resp = await client.get(f"/login/{token}")
        assert resp.status == 410 and "hết hạn" in await resp.text()
        resp = await client.post("/login", data={"token": token, "csrf": "x"})
        assert resp.status == 403  # no pre-sign-in cookie: the form was not ours
    finally:
        await client.close()


async def test_link_opened_then_expired_before_the_button(sqlite_engine, sqlite_world, clock, programme, tmp_path):
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        assert (await client.get(f"/login/{token}")).status == 200
        clock.advance(timedelta(minutes=11))
        pre = client.session.cookie_jar.filter_cookies(client.make_url("/"))[PRE_COOKIE].value
        resp = await client.post("/login", data={"token": token, "csrf": csrf_for(pre)}, allow_redirects=False)
        assert resp.status == 410 and "hết hạn" in await resp.text()
    finally:
        await client.close()


@pytest.mark.parametrize("token", ["nope", "A" * 43, "../../etc/passwd"])
async def test_unknown_link_is_refused(sqlite_engine, sqlite_world, clock, programme, tmp_path, token) -> None:
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        resp = await client.get(f"/login/{token}")
        assert resp.status in (401, 404, 410)  # "../" is resolved by the client: /etc/passwd needs a session
        assert (await client.get("/late")).status == 401
    finally:
        await client.close()


async def test_session_expires_after_12_hours(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path))
    try:
        assert (await sign_in_with(client, token)).status == 303
        clock.advance(timedelta(hours=11, minutes=59))
        assert (await client.get("/late")).status == 200
        clock.advance(timedelta(minutes=2))
        assert (await client.get("/late")).status == 401
    finally:
        await client.close()


async def test_secure_cookie_behind_https(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    from bot.web import build_web_app
    from tests.web_helpers import web_config

    cfg = web_config(sqlite_engine, programme, clock, tmp_path)
    cfg.public_url = "https://fieldbot.example.edu.vn"
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    client = await started(build_web_app(cfg))
    try:
        page = await client.get(f"/login/{token}")
        assert page.cookies[PRE_COOKIE]["secure"]
        # the test client speaks http, so it will not send a Secure cookie back: read it from the header
        pre = page.cookies[PRE_COOKIE].value
        client.session.cookie_jar.update_cookies({PRE_COOKIE: pre})
        resp = await client.post("/login", data={"token": token, "csrf": csrf_for(pre)}, allow_redirects=False)
        assert resp.status == 303 and resp.cookies[SESSION_COOKIE]["secure"]
    finally:
        await client.close()


async def test_sign_in_is_rate_limited(sqlite_engine, sqlite_world, clock, programme, tmp_path) -> None:
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path, sign_in_limit=3))
    try:
        statuses = [(await client.get(f"/login/guess{i}")).status for i in range(5)]
        assert statuses == [410, 410, 410, 429, 429]
        token = link_for(sqlite_engine, sqlite_world.officer, clock)
        assert (await client.get(f"/login/{token}")).status == 429  # even a good link waits
        clock.advance(timedelta(seconds=61))
        assert (await client.get(f"/login/{token}")).status == 200
    finally:
        await client.close()


# --- the Mini App ---------------------------------------------------------------------------------------------------


async def _mini_app(client: TestClient, raw: str):
    page = await client.get("/tg")
    assert page.status == 200 and "telegram-web-app.js" in await page.text()
    pre = client.session.cookie_jar.filter_cookies(client.make_url("/"))[PRE_COOKIE].value
    return await client.post("/tg/login", data={"init_data": raw, "csrf": csrf_for(pre)}, allow_redirects=False)


@pytest.fixture
def linked_principal(sqlite_engine, sqlite_world, clock):
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
    return sqlite_world.principal_a


async def test_mini_app_signs_in_a_linked_person(sqlite_engine, linked_principal, clock, programme, tmp_path) -> None:
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path, telegram_token=BOT_TOKEN))
    try:
        resp = await _mini_app(client, init_data(777, int(clock.now().timestamp())))
        assert resp.status == 303
        assert (await client.get("/", allow_redirects=False)).headers["Location"].startswith("/school/")
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("case", "status"),
    [("tampered", 403), ("stale", 403), ("other_bot", 403), ("unlinked", 403)],
)
async def test_mini_app_refusals(sqlite_engine, linked_principal, clock, programme, tmp_path, case, status) -> None:
    now = int(clock.now().timestamp())
    raw = {
        "tampered": init_data(777, now).replace("%22id%22%3A777", "%22id%22%3A778"),
        "stale": init_data(777, now - 2 * 3600),
        "other_bot": init_data(777, now, token=OTHER_BOT),
        "unlinked": init_data(999, now),
    }[case]
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path, telegram_token=BOT_TOKEN))
    try:
        resp = await _mini_app(client, raw)
        assert resp.status == status
        assert SESSION_COOKIE not in resp.cookies
        assert (await client.get("/late")).status == 401
    finally:
        await client.close()


async def test_mini_app_without_csrf_is_refused(sqlite_engine, linked_principal, clock, programme, tmp_path) -> None:
    client = await started(make_app(sqlite_engine, programme, clock, tmp_path, telegram_token=BOT_TOKEN))
    try:
        raw = init_data(777, int(clock.now().timestamp()))
        assert (await client.post("/tg/login", data={"init_data": raw})).status == 403
    finally:
        await client.close()


# --- the cookies' attributes: the link sign-in stays Lax; the Mini App is a cross-site iframe in Telegram's web client --


def set_cookies(resp) -> dict[str, dict[str, str]]:
    """The Set-Cookie headers as sent (Python 3.11's cookie parser drops a cookie it finds ``Partitioned`` on):
    name -> {"value": ..., attribute (lower case): value, or "" for a flag}."""
    out = {}
    for raw in resp.headers.getall("Set-Cookie", []):
        first, *attrs = [p.strip() for p in raw.split(";")]
        name, _, value = first.partition("=")
        out[name] = {"value": value} | {a.partition("=")[0].lower(): a.partition("=")[2] for a in attrs}
    return out


def https_app(engine, programme, clock, media_dir, **kw):
    from bot.web import build_web_app
    from tests.web_helpers import web_config

    cfg = web_config(engine, programme, clock, media_dir, **kw)
    cfg.public_url = "https://fieldbot.example.edu.vn"
    return build_web_app(cfg)


def assert_lax(cookie: dict[str, str], *, secure: bool) -> None:
    assert cookie["samesite"] == "Lax" and "partitioned" not in cookie
    assert "httponly" in cookie and cookie["path"] == "/" and "domain" not in cookie
    assert ("secure" in cookie) == secure


def assert_cross_site(cookie: dict[str, str]) -> None:
    """CHIPS: sent in the web.telegram.org iframe, kept in that top-level site's jar only."""
    assert cookie["samesite"] == "None" and "secure" in cookie and "partitioned" in cookie
    assert "httponly" in cookie and cookie["path"] == "/" and "domain" not in cookie


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_link_sign_in_cookies_are_lax(sqlite_engine, sqlite_world, clock, programme, tmp_path, https) -> None:
    build = https_app if https else make_app
    token = link_for(sqlite_engine, sqlite_world.officer, clock)
    client = await started(build(sqlite_engine, programme, clock, tmp_path))
    try:
        page = await client.get(f"/login/{token}")
        pre = set_cookies(page)[PRE_COOKIE]
        assert_lax(pre, secure=https)
        client.session.cookie_jar.update_cookies({PRE_COOKIE: pre["value"]})  # http client, Secure cookie
        resp = await client.post("/login", data={"token": token, "csrf": csrf_for(pre["value"])}, allow_redirects=False)
        assert resp.status == 303
        cookies = set_cookies(resp)
        assert_lax(cookies[SESSION_COOKIE], secure=https)
        assert int(cookies[SESSION_COOKIE]["max-age"]) == 12 * 3600
        assert_lax(cookies[PRE_COOKIE], secure=https)  # the pre-sign-in secret is deleted, as it was set
        assert cookies[PRE_COOKIE]["max-age"] == "0" and cookies[PRE_COOKIE]["value"] == ""
    finally:
        await client.close()


async def _mini_app_raw(client: TestClient, raw: str):
    """The Mini App's sign-in, with the cookies read from the headers (the test client speaks http)."""
    page = await client.get("/tg")
    pre = set_cookies(page)[PRE_COOKIE]
    client.session.cookie_jar.update_cookies({PRE_COOKIE: pre["value"]})
    resp = await client.post(
        "/tg/login", data={"init_data": raw, "csrf": csrf_for(pre["value"])}, allow_redirects=False
    )
    return page, resp


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_mini_app_cookies(sqlite_engine, linked_principal, clock, programme, tmp_path, https) -> None:
    build = https_app if https else make_app
    client = await started(build(sqlite_engine, programme, clock, tmp_path, telegram_token=BOT_TOKEN))
    try:
        page, resp = await _mini_app_raw(client, init_data(777, int(clock.now().timestamp())))
        assert resp.status == 303
        cookies = set_cookies(resp)
        for cookie in (set_cookies(page)[PRE_COOKIE], cookies[SESSION_COOKIE], cookies[PRE_COOKIE]):
            if https:
                assert_cross_site(cookie)
            else:  # a browser refuses SameSite=None without Secure: plain http keeps Lax
                assert_lax(cookie, secure=False)
        assert int(cookies[SESSION_COOKIE]["max-age"]) == 12 * 3600
        assert cookies[PRE_COOKIE]["max-age"] == "0"
    finally:
        await client.close()


async def test_a_mini_app_session_still_needs_the_csrf_token(
    sqlite_engine, linked_principal, clock, programme, tmp_path
) -> None:
    """Its cookie is SameSite=None, so a cross-site form would carry it: the CSRF token is what refuses the POST."""
    client = await started(https_app(sqlite_engine, programme, clock, tmp_path, telegram_token=BOT_TOKEN))
    try:
        _, resp = await _mini_app_raw(client, init_data(777, int(clock.now().timestamp())))
        session = set_cookies(resp)[SESSION_COOKIE]["value"]
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: session})
        assert (await client.get("/late")).status == 200
        cross_site = {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"}
        for form in ({}, {"csrf": ""}, {"csrf": "nope"}, {"csrf": csrf_for("another-session-token")}):
            refused = await client.post("/logout", data=form, headers=cross_site)
            assert refused.status == 403, form
            assert SESSION_COOKIE not in set_cookies(refused)
        for method in ("PUT", "DELETE", "PATCH"):  # not only POST: anything but a read needs the token
            assert (await client.request(method, "/logout", headers=cross_site)).status == 403, method
        assert (await client.get("/late")).status == 200  # still signed in
        resp = await client.post("/logout", data={"csrf": csrf_for(session)})
        assert resp.status == 200
        gone = set_cookies(resp)[SESSION_COOKIE]
        assert_cross_site(gone)  # a partitioned cookie is deleted only by a partitioned Set-Cookie
        assert gone["max-age"] == "0" and gone["value"] == ""
        assert (await client.get("/late")).status == 401
    finally:
        await client.close()


async def test_signing_out_of_a_link_session_deletes_a_lax_cookie(
    sqlite_engine, sqlite_world, clock, programme, tmp_path
) -> None:
    from tests.web_helpers import session_for

    client = await started(https_app(sqlite_engine, programme, clock, tmp_path))
    try:
        session = session_for(sqlite_engine, sqlite_world.officer, clock)
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: session})
        resp = await client.post("/logout", data={"csrf": csrf_for(session)})
        assert resp.status == 200
        gone = set_cookies(resp)[SESSION_COOKIE]
        assert_lax(gone, secure=True)
        assert gone["max-age"] == "0" and gone["value"] == ""
    finally:
        await client.close()
