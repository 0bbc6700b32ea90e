"""The real engine behind python-telegram-bot: Application.process_update with an offline bot.

Linking (own contact, someone else's, unknown phone, deactivated person), a whole /dangky with taps on the
inline buttons, a redelivered update, and an unlinked person asking for anything but /start.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.telegram import build_application
from storage.db import session_scope
from storage.models import ChatIdentity, Student
from tests.engine_helpers import make_engine
from tests.telegram_offline import TOKEN, OfflineRequest, UpdateFactory


@pytest.fixture
async def tg(sqlite_engine, sqlite_world, programme, clock):
    request = OfflineRequest()
    engine = make_engine(sqlite_engine, programme, clock)
    app = build_application(
        token=TOKEN,
        api_url="http://127.0.0.1:9",
        handle=engine.handle,
        clock=clock,
        rate_limit=False,
        request=request,
        set_my_commands=False,
    )
    await app.initialize()
    yield app, request, UpdateFactory(app.bot)
    await app.shutdown()


def last_text(request: OfflineRequest, chat: int) -> str:
    return request.texts(chat)[-1]


def button(request: OfflineRequest, chat: int, label: str) -> str:
    for params in reversed(request.sent()):
        if int(params["chat_id"]) != chat or "reply_markup" not in params:
            continue
        for row in params["reply_markup"].get("inline_keyboard", []):
            for b in row:
                if label.lower() in b["text"].lower():
                    return b["callback_data"]
    raise AssertionError(f"no button {label!r}")


def linked(sqlite_engine, user_id: int) -> int | None:
    with Session(sqlite_engine) as s:
        row = s.scalars(select(ChatIdentity).where(ChatIdentity.external_id == str(user_id))).first()
        return row.staff_id if row else None


async def test_own_contact_links(tg, sqlite_engine, sqlite_world) -> None:
    app, request, f = tg
    await app.process_update(f.text(501, "/start"))
    kb = request.sent()[-1]["reply_markup"]
    assert kb["keyboard"][0][0]["request_contact"] is True
    await app.process_update(f.contact(501, "0901 000 002", contact_user_id=501))
    assert "Trần Văn Minh" in "\n".join(request.texts(501))
    assert linked(sqlite_engine, 501) == sqlite_world.teacher_a


async def test_someone_elses_contact_unknown_phone_and_deactivated_are_refused(tg, sqlite_engine, sqlite_world) -> None:
    app, request, f = tg
    await app.process_update(f.contact(502, sqlite_world.phones["principal_a"], contact_user_id=999))  # forwarded
    await app.process_update(f.contact(502, sqlite_world.phones["principal_a"]))  # typed card: no user id
    await app.process_update(f.contact(503, "0988 777 666", contact_user_id=503))  # not in the roster
    await app.process_update(f.contact(504, sqlite_world.phones["inactive_teacher_a"], contact_user_id=504))
    assert (
        linked(sqlite_engine, 502) is None and linked(sqlite_engine, 503) is None and linked(sqlite_engine, 504) is None
    )
    assert "0913" in last_text(request, 503)  # whom to ask: the district contact, with phone
    for chat in (502, 503, 504):
        assert request.texts(chat), f"chat {chat} got no answer"


async def test_unlinked_person_gets_only_linking(tg, sqlite_engine) -> None:
    app, request, f = tg
    for text in ("/dangky", "/tonghop", "xin chào"):
        await app.process_update(f.text(505, text))
    texts = request.texts(505)
    assert len(texts) == 3 and all("số điện thoại" in t for t in texts)


async def test_dangky_through_telegram_with_taps_and_a_redelivered_update(tg, sqlite_engine, sqlite_world) -> None:
    app, request, f = tg
    await app.process_update(f.contact(506, sqlite_world.phones["teacher_a"], contact_user_id=506))
    await app.process_update(f.text(506, "/dangky"))
    await app.process_update(f.tap(506, button(request, 506, "Phụ huynh đã đồng ý")))  # the consent step
    await app.process_update(f.text(506, "Nguyễn <b>Văn</b> An"))
    assert "không hợp lệ" in last_text(request, 506).lower() or "chỉ" in last_text(request, 506).lower()
    for text in ("Nguyễn Văn An", "05/09/2012", "4A1", "0123456789"):
        await app.process_update(f.text(506, text))
    for label in ("Nam", "Hộ nghèo", "Máy tính", "Bỏ qua", "Bỏ qua", "Bỏ qua"):
        await app.process_update(f.tap(506, button(request, 506, label)))
    assert "Kiểm tra lại" in last_text(request, 506)
    save = f.tap(506, button(request, 506, "Lưu"))
    await app.process_update(save)
    await app.process_update(save)  # Telegram delivers the same update again
    assert "Đã lưu" in last_text(request, 506)
    with session_scope(sqlite_engine) as s:
        assert s.exec(select(func.count()).select_from(Student)).scalar_one() == 1
    assert all(len(p["text"]) <= 4096 for p in request.sent())
    assert any(n == "answerCallbackQuery" for n, _ in request.calls)
