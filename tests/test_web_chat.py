"""The way in from the chat and the terminal: /web answers with a one-time link (and says when the web view is
off), `fieldbot web link PHONE` prints one; a province officer can use /tonghop and /xuatfile for the province."""

from __future__ import annotations

import json
import re

import pytest
from openpyxl import load_workbook

from bot.cli import main
from core.vocabulary import Role
from storage.db import session_scope
from storage.models import District, Province, Staff
from storage.web import check_link
from tests.engine_helpers import Chat, make_engine
from tests.test_cli import EXAMPLE, env  # noqa: F401  (fixture)

LINK = re.compile(r"https?://\S+/login/([A-Za-z0-9_\-%]+)")


@pytest.fixture
def province_officer(sqlite_engine, sqlite_world, clock) -> str:
    with session_scope(sqlite_engine) as s:
        bd = Province(code="BD", name="Tỉnh Bình Dương")
        s.add(bd)
        s.flush()
        s.get(District, sqlite_world.district_id).province_id = bd.id
        s.get(District, sqlite_world.other_district_id).province_id = bd.id
        s.add(
            Staff(
                full_name="Trịnh Thanh Sơn",
                phone="+842743822001",
                role=Role.PROVINCE_OFFICER,
                province_id=bd.id,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    return "+842743822001"


async def test_web_command_sends_a_one_time_link(sqlite_engine, sqlite_world, programme, clock) -> None:
    eng = make_engine(sqlite_engine, programme, clock, web_url="https://fieldbot.example.edu.vn/")
    chat = await Chat.linked(eng, sqlite_world.phones["officer"])
    await chat.say("/web")
    m = LINK.search(chat.text)
    assert m and "https://fieldbot.example.edu.vn/login/" in chat.text and "10 phút" in chat.text
    with session_scope(sqlite_engine) as s:
        assert check_link(s, token=m.group(1), now=clock.now()).ok


async def test_web_command_when_the_web_view_is_off(sqlite_engine, sqlite_world, programme, clock) -> None:
    chat = await Chat.linked(make_engine(sqlite_engine, programme, clock), sqlite_world.phones["principal_a"])
    await chat.say("/web")
    assert "chưa được bật" in chat.text and "/login/" not in chat.text


async def test_teachers_have_no_web_view(sqlite_engine, sqlite_world, programme, clock) -> None:
    eng = make_engine(sqlite_engine, programme, clock, web_url="http://127.0.0.1:8080")
    chat = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await chat.say("/web")
    assert "/login/" not in chat.text


async def test_province_officer_summary_and_export(
    sqlite_engine, sqlite_world, programme, clock, province_officer, tmp_path
) -> None:
    eng = make_engine(sqlite_engine, programme, clock, media_dir=tmp_path / "media", web_url="http://127.0.0.1:8080")
    chat = await Chat.linked(eng, province_officer)
    replies = await chat.say("/tonghop")
    assert "Tỉnh Bình Dương" in replies[0].text and "3 trường" in replies[0].text
    assert replies[1].photo
    replies = await chat.say("/xuatfile")
    doc = next(r for r in replies if r.document)
    assert doc.document_name.startswith("tong-hop-bd-")
    wb = load_workbook(doc.document, read_only=True)
    cells = {str(c) for row in wb["Tổng hợp"].iter_rows(values_only=True) for c in row if c is not None}
    assert {"Trường Tiểu học Phú Hòa 1", "Trường THCS Chu Văn An", "Trường Tiểu học Dĩ An"} <= cells
    await chat.say("/web")
    assert "/login/" in chat.text


def test_cli_web_link(env, capsys) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    capsys.readouterr()
    assert main(["web", "link", "0913 860 438"]) == 0
    out = capsys.readouterr().out
    assert "Lê Minh Tiến" in out and LINK.search(out) and "http://127.0.0.1:8080/login/" in out


@pytest.mark.parametrize(("phone", "message"), [("0999 999 999", "không có người nào"), ("12", "không hợp lệ")])
def test_cli_web_link_mistakes(env, capsys, phone: str, message: str) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    capsys.readouterr()
    assert main(["web", "link", phone]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_web_link_uses_the_public_url(env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FIELDBOT_WEB_URL", "https://tiendo.example.edu.vn")
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert main(["web", "link", "0274 382 2001"]) == 0  # the province officer of the example roster
    assert "https://tiendo.example.edu.vn/login/" in capsys.readouterr().out


def test_bad_web_settings(env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FIELDBOT_WEB_URL", "ftp://x")
    assert main(["web", "link", "0913860438"]) == 2
    assert "FIELDBOT_WEB_URL" in capsys.readouterr().err
    monkeypatch.setenv("FIELDBOT_WEB_URL", "https://x.example")
    monkeypatch.setenv("FIELDBOT_WEB_LISTEN", "localhost")
    assert main(["web", "link", "0913860438"]) == 2
    assert "FIELDBOT_WEB_LISTEN" in capsys.readouterr().err


async def test_province_officer_menu(sqlite_engine, sqlite_world, programme, clock, province_officer) -> None:
    chat = await Chat.linked(make_engine(sqlite_engine, programme, clock), province_officer)
    await chat.say("/menu")
    labels = " ".join(chat.labels)
    for command in ("tonghop", "xuatfile", "web"):
        assert command in " ".join(o.key for o in chat.options) or command in labels
    assert "dangky" not in " ".join(o.key for o in chat.options)
    await chat.say("/trogiup")
    assert "/web" in chat.text and "/dangky" not in chat.text


@pytest.mark.parametrize(
    ("url", "expected", "language", "caption"),
    [
        ("https://tiendo.example.edu.vn/tg", True, "vi", "Tiến độ"),
        ("https://tiendo.example.edu.vn/tg", True, "en", "Progress"),
        ("http://127.0.0.1:8080/tg", False, "vi", ""),
    ],
)
async def test_telegram_menu_button_opens_the_mini_app(url: str, expected: bool, language: str, caption: str) -> None:
    from bot.telegram import build_application
    from tests.telegram_offline import TOKEN, OfflineRequest

    async def handle(incoming):
        return []

    request = OfflineRequest()
    app = build_application(
        token=TOKEN,
        api_url="http://127.0.0.1:9",
        handle=handle,
        rate_limit=False,
        request=request,
        web_app_url=url,
        language=language,
    )
    await app.initialize()
    try:
        await app.post_init(app)
    finally:
        await app.shutdown()
    buttons = [params for method, params in request.calls if method == "setChatMenuButton"]
    if expected:
        assert len(buttons) == 1 and url in json.dumps(buttons[0], ensure_ascii=False)
        assert buttons[0]["menu_button"]["text"] == caption
    else:
        assert buttons == []  # Telegram opens Mini Apps over HTTPS only
    assert any(method == "setMyCommands" for method, _ in request.calls)
