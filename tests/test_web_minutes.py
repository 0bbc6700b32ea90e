"""Signed minutes (biên bản) in the web view: the overview's column, sort and filter, the province's column,
and each handover's status on the school page, counted as /tonghop counts them."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.web.app import SESSION_COOKIE
from reports.summary import build_summary
from storage.db import session_scope
from storage.models import Handover
from storage.scope import Scope
from tests.web_helpers import make_app, seed_web, session_for


@pytest.fixture
def web(sqlite_engine, sqlite_world, clock, programme, tmp_path):
    return seed_web(sqlite_engine, sqlite_world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")


async def _client(engine, programme, clock, web, staff_id: int) -> TestClient:
    client = TestClient(TestServer(make_app(engine, programme, clock, web.media_dir)))
    await client.start_server()
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: session_for(engine, staff_id, clock)})
    return client


def _cell(html: str, school_code: str) -> str:
    row = re.search(rf'<tr[^>]*data-school="{school_code}".*?</tr>', html, re.S).group(0)
    return re.search(r'data-label="Biên bản đã ký">([^<]*)<', row).group(1)


async def test_the_overview_counts_signed_minutes_and_filters_the_missing(
    sqlite_engine, sqlite_world, programme, clock, web
) -> None:
    w = sqlite_world
    with session_scope(sqlite_engine) as s:
        a = build_summary(s, scope=Scope(district_id=w.district_id, school_id=w.school_a), programme=programme,
                          now=clock.now()).schools[0]  # fmt: skip
        first = s.scalars(select(Handover.id).where(Handover.school_id == w.school_a).order_by(Handover.id)).first()
    assert a.handed_over >= 2 and a.unsigned_minutes == a.handed_over  # nothing signed yet in the seed
    client = await _client(sqlite_engine, programme, clock, web, w.officer)
    try:
        html = await (await client.get(f"/district/{w.district_id}")).text()
        assert _cell(html, "TH-PHUHOA1") == f"0/{a.handed_over}"
        with session_scope(sqlite_engine) as s:
            s.execute(update(Handover).where(Handover.id == first).values(minutes_signed_at=clock.now()))
        html = await (await client.get(f"/district/{w.district_id}")).text()
        assert _cell(html, "TH-PHUHOA1") == f"1/{a.handed_over}"
        missing = await (await client.get(f"/district/{w.district_id}?show=minutes")).text()
        shown = re.findall(r'data-school="([^"]+)"', missing)
        assert "TH-PHUHOA1" in shown  # still one to sign
        assert all(_cell(missing, code).split("/")[0] != _cell(missing, code).split("/")[1] for code in shown)
        school = await (await client.get(f"/school/{w.school_a}")).text()
        assert f"Biên bản BG{first:06d}: đã ký" in school and "chưa có bản ký" in school
    finally:
        await client.close()


async def test_the_province_shows_signed_minutes_per_district(sqlite_engine, sqlite_world, programme, clock, web):
    client = await _client(sqlite_engine, programme, clock, web, web.province_officer)
    try:
        html = await (await client.get("/")).text()
        assert "Biên bản đã ký" in html
        with session_scope(sqlite_engine) as s:
            t = build_summary(s, scope=Scope(district_id=sqlite_world.district_id), programme=programme,
                              now=clock.now()).totals  # fmt: skip
        assert f">{t.handed_over - t.unsigned_minutes}/{t.handed_over}<" in html
    finally:
        await client.close()
