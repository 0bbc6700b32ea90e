"""Every route of the web view as principal A, principal B, the district officer, another district's officer,
the province officer and nobody: what is outside a person's scope answers 404 (as if it did not exist), what
is inside answers 200, and nothing answers without a session. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import SESSION_COOKIE
from storage.db import session_scope
from tests.test_reports_data import OUTSIDER
from tests.web_helpers import make_app, seed_web, session_for

PERSONAS = ("principal_a", "principal_b", "officer", "other_officer", "province", "nobody")


@pytest.fixture
def web(db_engine, world, clock, programme, tmp_path):
    return seed_web(db_engine, world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")


def staff_id(web, persona: str) -> int | None:
    if persona == "nobody":
        return None
    if persona == "province":
        return web.province_officer
    return getattr(web.world, persona)


def routes(web) -> dict[str, dict[str, int]]:
    w = web.world
    a, b, o = w.school_a, w.school_b, w.school_other
    ok = 200

    def only(*allowed: str, status: int = ok) -> dict[str, int]:
        return {p: (status if p in allowed else 401 if p == "nobody" else 404) for p in PERSONAS}

    everyone = {p: (401 if p == "nobody" else ok) for p in PERSONAS}
    see_a = ("principal_a", "officer", "province")
    see_b = ("principal_b", "officer", "province")
    return {
        "/": {**everyone, "principal_a": 303, "principal_b": 303},
        "/late": everyone,
        "/chart.png": everyone,
        "/export.xlsx": everyone,
        f"/school/{a}": only(*see_a),
        f"/school/{a}/export.xlsx": only(*see_a),
        f"/school/{b}": only(*see_b),
        f"/school/{b}/export.xlsx": only(*see_b),
        f"/school/{o}": only("other_officer"),
        f"/school/{o}/export.xlsx": only("other_officer"),
        "/school/999999": only(),
        f"/district/{w.district_id}": only("officer", "province"),
        f"/district/{w.district_id}/chart.png": only("officer", "province"),
        f"/district/{w.district_id}/export.xlsx": only("officer", "province"),
        f"/district/{w.other_district_id}": only("other_officer"),
        f"/district/{w.other_district_id}/export.xlsx": only("other_officer"),
        f"/photo/{web.photo_a}/thumb.jpg": only(*see_a),
        f"/photo/{web.photo_a}/full.jpg": only(*see_a),
        f"/photo/{web.photo_other}/thumb.jpg": only("other_officer"),
        f"/photo/{web.photo_other}/full.jpg": only("other_officer"),
    }


async def client_for(db_engine, programme, clock, web, persona: str) -> TestClient:
    app = make_app(db_engine, programme, clock, web.media_dir)
    client = TestClient(TestServer(app))
    await client.start_server()
    sid = staff_id(web, persona)
    if sid is not None:
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: session_for(db_engine, sid, clock)})
    return client


@pytest.mark.parametrize("persona", PERSONAS)
async def test_every_route_is_scoped(db_engine, programme, clock, web, persona: str) -> None:
    client = await client_for(db_engine, programme, clock, web, persona)
    try:
        got = {}
        for path in routes(web):
            resp = await client.get(path, allow_redirects=False)
            got[path] = resp.status
            body = await resp.read()
            if resp.status == 200 and path.endswith(".xlsx"):
                wb = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
                text = " ".join(str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row)
                assert (OUTSIDER in text) == (persona == "other_officer"), path
            elif resp.status == 200 and resp.content_type == "text/html":
                html = body.decode()
                if persona != "other_officer":
                    assert OUTSIDER not in html, path
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert "frame-ancestors 'self' https://web.telegram.org" in resp.headers["Content-Security-Policy"]
        assert got == {path: by_persona[persona] for path, by_persona in routes(web).items()}
    finally:
        await client.close()


async def test_principal_lands_on_their_school_and_sees_only_it(db_engine, programme, clock, web) -> None:
    client = await client_for(db_engine, programme, clock, web, "principal_b")
    try:
        resp = await client.get("/", allow_redirects=False)
        assert resp.headers["Location"] == f"/school/{web.world.school_b}"
        late = await (await client.get("/late")).text()
        assert "Bùi Gia Huy" in late and "Nguyễn Thị Ánh" not in late and "Phú Hòa" not in late
    finally:
        await client.close()


async def test_province_overview_lists_its_districts_only(db_engine, programme, clock, web) -> None:
    client = await client_for(db_engine, programme, clock, web, "province")
    try:
        html = await (await client.get("/")).text()
        assert "Tỉnh Bình Dương" in html and "Thành phố Thủ Dầu Một" in html and "Dĩ An" not in html
        assert f'href="/district/{web.world.district_id}"' in html
        district = await (await client.get(f"/district/{web.world.district_id}")).text()
        assert "Phú Hòa 1" in district and "Chu Văn An" in district
    finally:
        await client.close()


async def test_views_of_pupil_data_are_recorded(db_engine, programme, clock, web) -> None:
    client = await client_for(db_engine, programme, clock, web, "officer")
    try:
        assert (await client.get(f"/school/{web.world.school_a}")).status == 200
        assert (await client.get(f"/school/{web.world.school_other}")).status == 404
    finally:
        await client.close()
    from sqlalchemy import select

    from storage.models import AccessLog

    with session_scope(db_engine) as s:
        views = s.execute(select(AccessLog).where(AccessLog.what.like("web:%"))).scalars().all()
    # The access log (issue 19's record of processing): the officer's view of school A, nothing for the 404.
    assert [(v.actor_id, v.what, v.school_id) for v in views] == [(web.world.officer, "web:school", web.world.school_a)]


async def test_post_without_csrf_is_refused_and_sign_out_ends_the_session(db_engine, programme, clock, web) -> None:
    from storage.web import csrf_for

    client = await client_for(db_engine, programme, clock, web, "officer")
    try:
        token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
        assert (await client.post("/logout", data={"csrf": "nope"})).status == 403
        assert (await client.post("/logout", data={})).status == 403
        assert (await client.get("/late")).status == 200  # still signed in
        resp = await client.post("/logout", data={"csrf": csrf_for(token)})
        assert resp.status == 200 and "đăng xuất" in await resp.text()
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})  # the old cookie, replayed
        assert (await client.get("/late")).status == 401
    finally:
        await client.close()
