"""The web view speaks the reader's language: every word of a page is a ``T`` of ``bot/web/texts.py`` (the
templates and the web modules hold no Vietnamese of their own), a signed-in person reads their
``Staff.language`` (pages, chart, workbook, numbers), and before sign-in the browser's ``Accept-Language``
chooses between Vietnamese (the default) and English."""

from __future__ import annotations

import ast
import io
from html.parser import HTMLParser
from pathlib import Path

import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.web.app import ENV, SESSION_COOKIE
from bot.web.texts import page_language
from storage import models
from storage.db import session_scope
from tests.web_helpers import make_app, seed_web, session_for

WEB = Path(__file__).resolve().parent.parent / "bot" / "web"


def vietnamese(text: str) -> list[str]:
    """The letters of ``text`` outside ASCII: ă, ê, ơ, đ, ế, ... (punctuation such as — · ← … is not a letter)."""
    return [ch for ch in text if ch.isalpha() and not ch.isascii()]


# --- no Vietnamese outside T ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", sorted(p.name for p in (WEB / "templates").glob("*.html")))
def test_templates_hold_no_vietnamese(template: str) -> None:
    """A template is markup and data: its words come from bot/web/texts.py, in the reader's language."""
    text = (WEB / "templates" / template).read_text(encoding="utf-8")
    found = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if vietnamese(line)]
    assert found == []


def _strings_outside_t(source: str) -> list[str]:
    tree = ast.parse(source)
    inside_t: set[int] = set()
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "T":
            inside_t.update(id(n) for arg in [*node.args, *node.keywords] for n in ast.walk(arg))
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in inside_t | docstrings
        and vietnamese(node.value)
    ]


@pytest.mark.parametrize("module", sorted(p.name for p in WEB.glob("*.py")))
def test_web_modules_word_pages_only_through_t(module: str) -> None:
    """Vietnamese in a web module's code is a ``T(vi=..., en=...)``, never a bare string (docstrings aside)."""
    assert _strings_outside_t((WEB / module).read_text(encoding="utf-8")) == []


# --- choosing the language ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("staff", "header", "lang"),
    [
        (None, None, "vi"),
        (None, "", "vi"),
        (None, "vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"),
        (None, "en-US,en;q=0.9,vi;q=0.8", "en"),
        (None, "en-GB", "en"),
        (None, "fr-FR,fr;q=0.9,en;q=0.5", "en"),  # prefers English to Vietnamese
        (None, "fr-FR,de;q=0.9", "vi"),  # neither: the programme's language
        (None, "vi;q=0.4,en;q=0.6", "en"),
        (None, "en;q=0,vi", "vi"),
        (None, "en;q=nonsense,vi;q=0.1", "vi"),
        ("en", "vi", "en"),  # once signed in, the person's own choice wins
        ("vi", "en-US", "vi"),
        ("", "en-US", "vi"),
    ],
)
def test_page_language(staff, header, lang: str) -> None:
    assert page_language(staff, header) == lang


@pytest.mark.parametrize(("lang", "shown"), [("vi", "10.000 · 1.234.567"), ("en", "10,000 · 1,234,567")])
def test_counts_are_written_as_the_reader_writes_them(lang: str, shown: str) -> None:
    assert ENV.from_string("{{ a|num }} · {{ b|num }}").render(lang=lang, a=10000, b=1234567) == shown


# --- pages as an English and a Vietnamese reader ----------------------------------------------------------------------


class _Visible(HTMLParser):
    """The words a person sees or hears: text, and the attributes a browser shows or reads out."""

    SHOWN = ("title", "alt", "data-label", "placeholder", "aria-label")

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.html_lang = ""

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if tag == "html" and name == "lang":
                self.html_lang = value or ""
            if name in self.SHOWN and value:
                self.chunks.append(value)

    def handle_data(self, data):
        if data.strip():
            self.chunks.append(data)


def visible(html: str) -> _Visible:
    parser = _Visible()
    parser.feed(html)
    return parser


def data_strings(engine) -> list[str]:
    """Every text the database holds for the seed (names of places, schools, people, pupils, classes, models):
    data, shown as typed in either language. Longest first, so a name is removed before a part of it."""
    out: set[str] = set()
    with session_scope(engine) as s:
        for model in (
            models.Province,
            models.District,
            models.School,
            models.Staff,
            models.Student,
            models.Sponsor,
            models.Batch,
        ):
            for row in s.execute(select(model)).scalars():
                out.update(v for c in model.__table__.columns if isinstance(v := getattr(row, c.name, None), str) and v)
    return sorted(out, key=len, reverse=True)


def words_outside_data(html: str, data: list[str]) -> list[str]:
    """The visible chunks that still hold a Vietnamese letter once the database's own texts are taken out."""
    left = []
    for chunk in visible(html).chunks:
        for value in data:
            chunk = chunk.replace(value, " ")
        if vietnamese(chunk):
            left.append(chunk.strip())
    return left


@pytest.fixture
def web(sqlite_engine, sqlite_world, clock, programme, tmp_path):
    return seed_web(sqlite_engine, sqlite_world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")


def speaks(engine, staff_id: int, lang: str) -> None:
    with session_scope(engine) as s:
        s.get(models.Staff, staff_id).language = lang


async def client_as(engine, programme, clock, web, staff_id: int | None, **headers) -> TestClient:
    client = TestClient(TestServer(make_app(engine, programme, clock, web.media_dir)), headers=headers)
    await client.start_server()
    if staff_id is not None:
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: session_for(engine, staff_id, clock)})
    return client


def pages(web) -> list[str]:
    w = web.world
    return ["/", "/late", f"/school/{w.school_a}", f"/school/{w.school_b}", "/school/999999"]


async def test_an_english_speaking_officer_reads_english(sqlite_engine, programme, clock, web) -> None:
    speaks(sqlite_engine, web.world.officer, "en")
    data = data_strings(sqlite_engine)
    # A browser that prefers Vietnamese changes nothing: the person chose English in the bot.
    client = await client_as(sqlite_engine, programme, clock, web, web.world.officer, **{"Accept-Language": "vi"})
    try:
        for path in pages(web):
            resp = await client.get(path)
            assert resp.status == (404 if path.endswith("999999") else 200), path
            html = await resp.text()
            assert visible(html).html_lang == "en" and resp.headers["Content-Language"] == "en", path
            assert words_outside_data(html, data) == [], path
            assert "Sign out" in html and "Late items" in html, path
        overview = await (await client.get("/")).text()
        for word in ("Registered", "handed over", "Download the Excel file", "Sort by", "Descending", "Flagged photos"):
            assert word in overview
        assert 'alt="Progress chart, school by school"' in overview
        assert "District education officer" in overview
        school = await (await client.get(f"/school/{web.world.school_a}")).text()
        assert "Pupils (" in school and "Photo used again" in school and "Handover photo for" in school
        assert "Call principal" in school
        late = await (await client.get("/late")).text()
        assert 'title="Call principal ' in late
        resp = await client.post("/logout", data={})
        assert resp.status == 403 and "The form is stale" in await resp.text()
    finally:
        await client.close()


async def test_an_english_speaking_province_officer_reads_english(sqlite_engine, programme, clock, web) -> None:
    speaks(sqlite_engine, web.province_officer, "en")
    data = data_strings(sqlite_engine)
    client = await client_as(sqlite_engine, programme, clock, web, web.province_officer)
    try:
        for path in ("/", f"/district/{web.world.district_id}"):
            html = await (await client.get(path)).text()
            assert visible(html).html_lang == "en", path
            assert words_outside_data(html, data) == [], path
        html = await (await client.get("/")).text()
        assert "Download the Excel file for the province" in html and "Late schools" in html
        assert "Provincial education officer" in html
    finally:
        await client.close()


async def test_a_vietnamese_officer_reads_vietnamese(sqlite_engine, programme, clock, web) -> None:
    client = await client_as(sqlite_engine, programme, clock, web, web.world.officer, **{"Accept-Language": "en"})
    try:
        overview = await (await client.get("/")).text()
        assert visible(overview).html_lang == "vi"
        for words in (
            "Tổng quan",
            "Việc trễ",
            "Đăng xuất",
            "Chuyên viên Phòng GD&amp;ĐT",
            "đã bàn giao",
            "trễ CSDL ngành",
            "Tải tệp Excel",
            "Sắp xếp",
            "Giảm dần",
            "Chưa chốt báo cáo",
            "Ảnh bị gắn cờ",
            'alt="Biểu đồ tiến độ từng trường"',
            'data-label="Đã duyệt"',
        ):
            assert words in overview, words
        assert "Sign out" not in overview and "Registered" not in overview
        assert words_outside_data(overview, data_strings(sqlite_engine))  # the English check finds Vietnamese
        school = await (await client.get(f"/school/{web.world.school_a}")).text()
        for words in ("Học sinh (", "Ảnh dùng lại", "Ảnh bàn giao cho", "Họ và tên", "Lô máy đã nhận"):
            assert words in school, words
    finally:
        await client.close()


async def test_the_workbook_and_chart_follow_the_reader(sqlite_engine, programme, clock, web, monkeypatch) -> None:
    import reports.chart

    asked: list[str] = []
    real = reports.chart.render_chart

    def spy(summary, *, lang="vi"):
        asked.append(lang)
        return real(summary, lang=lang)

    monkeypatch.setattr(reports.chart, "render_chart", spy)
    speaks(sqlite_engine, web.world.officer, "en")
    for staff_id, lang in ((web.world.officer, "en"), (web.world.other_officer, "vi")):
        client = await client_as(sqlite_engine, programme, clock, web, staff_id)
        try:
            resp = await client.get("/export.xlsx")
            assert resp.status == 200
            name = resp.headers["Content-Disposition"]
            assert ("summary-" if lang == "en" else "tong-hop-") in name
            wb = openpyxl.load_workbook(io.BytesIO(await resp.read()), read_only=True)
            assert wb.sheetnames[0] == ("Needs" if lang == "en" else "Nhu cầu")
            assert (await client.get("/chart.png")).status == 200
        finally:
            await client.close()
    assert asked == ["en", "vi"]


async def test_before_sign_in_the_browser_chooses(sqlite_engine, programme, clock, web) -> None:
    english = await client_as(sqlite_engine, programme, clock, web, None, **{"Accept-Language": "en-US,en;q=0.9"})
    plain = await client_as(sqlite_engine, programme, clock, web, None)
    try:
        resp = await english.get("/late")
        html = await resp.text()
        assert resp.status == 401 and visible(html).html_lang == "en"
        assert "You are not signed in." in html and "Type /web in the bot" in html
        tg = await (await english.get("/tg")).text()
        assert "Sign in with Telegram" in tg and "JavaScript must be on" in tg and vietnamese(tg) == []
        assert "This sign-in link is not valid." in await (await english.get("/login/nope")).text()
        resp = await plain.get("/late")
        html = await resp.text()
        assert visible(html).html_lang == "vi" and "Bạn chưa đăng nhập." in html
        assert "Đăng nhập qua Telegram" in await (await plain.get("/tg")).text()
    finally:
        await english.close()
        await plain.close()


async def test_signing_out_says_goodbye_in_the_persons_language(sqlite_engine, programme, clock, web) -> None:
    from storage.web import csrf_for

    speaks(sqlite_engine, web.world.officer, "en")
    client = await client_as(sqlite_engine, programme, clock, web, web.world.officer)
    try:
        token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
        resp = await client.post("/logout", data={"csrf": csrf_for(token)})
        html = await resp.text()
        assert resp.status == 200 and "You are signed out." in html and visible(html).html_lang == "en"
    finally:
        await client.close()
