"""The Telegram adapter alone: updates -> Incoming, Outgoing -> Bot API calls (offline bot)."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.telegram import CONTACT_BUTTON, build_application, split_text
from core.clock import LOCAL_TZ, FixedClock
from core.messages import Incoming, Option, Outgoing, esc
from tests.telegram_offline import TOKEN, OfflineRequest, UpdateFactory

CLOCK = FixedClock(datetime(2021, 11, 18, 9, 0, tzinfo=LOCAL_TZ))


class Recorder:
    """Stands in for the engine: records what the adapter made of each update and answers as told."""

    def __init__(self, *replies: Outgoing) -> None:
        self.seen: list[Incoming] = []
        self.replies = list(replies)

    async def __call__(self, incoming: Incoming) -> list[Outgoing]:
        self.seen.append(incoming)
        return list(self.replies)


@pytest.fixture
async def tg():
    async def make(*replies: Outgoing):
        request = OfflineRequest()
        handle = Recorder(*replies)
        app = build_application(
            token=TOKEN,
            api_url="http://127.0.0.1:9",
            handle=handle,
            clock=CLOCK,
            rate_limit=False,
            request=request,
            set_my_commands=False,
        )
        await app.initialize()
        made.append(app)
        return app, request, handle, UpdateFactory(app.bot)

    made: list = []
    yield make
    for app in made:
        await app.shutdown()


async def test_text_command_becomes_incoming(tg) -> None:
    app, request, handle, f = await tg(Outgoing(text="Chào <b>bạn</b>"))
    await app.process_update(f.text(42, "/dangky@fieldbot_test_bot"))
    inc = handle.seen[0]
    assert (inc.channel, inc.user_id, inc.chat_id, inc.command) == ("telegram", "42", "42", "dangky")
    assert inc.received_at == CLOCK.now() and inc.message_id.startswith("42:")
    assert request.sent()[0]["parse_mode"] == "HTML" and request.sent()[0]["text"] == "Chào <b>bạn</b>"


async def test_options_render_as_inline_keyboard_with_columns(tg) -> None:
    opts = [Option("c:1", "Hộ nghèo"), Option("c:2", "Hộ cận nghèo"), Option("c:3", "Khó khăn khác")]
    app, request, _, f = await tg(Outgoing(text="Đối tượng?", options=opts, columns=2))
    await app.process_update(f.text(42, "x"))
    markup = request.sent()[0]["reply_markup"]
    rows = markup["inline_keyboard"]
    assert [len(r) for r in rows] == [2, 1]
    assert rows[0][1] == {"text": "Hộ cận nghèo", "callback_data": "c:2"}


async def test_contact_request_is_reply_keyboard(tg) -> None:
    app, request, _, f = await tg(Outgoing(text="Chia sẻ số", request_contact=True))
    await app.process_update(f.text(42, "/start"))
    kb = request.sent()[0]["reply_markup"]
    assert kb["keyboard"][0][0] == {"text": CONTACT_BUTTON, "request_contact": True}
    assert kb["one_time_keyboard"] is True


async def test_tap_is_answered_and_buttons_removed(tg) -> None:
    app, request, handle, f = await tg(Outgoing(text="ok"))
    update = f.tap(42, "c:2")
    update.callback_query.message.reply_markup  # the factory's message has no keyboard: only answer
    await app.process_update(update)
    assert handle.seen[0].choice == "c:2" and handle.seen[0].message_id.startswith("cb:")
    assert [n for n, _ in request.calls if n != "getMe"][:1] == ["answerCallbackQuery"]


async def test_contact_photo_sticker_and_group(tg) -> None:
    app, request, handle, f = await tg()
    await app.process_update(f.contact(42, "0901000002", contact_user_id=42))
    await app.process_update(f.contact(42, "0901000003"))  # typed contact: no user id
    await app.process_update(f.photo(42, size=2_000_000))
    await app.process_update(f.sticker(42))
    await app.process_update(f.group_text(42, "/dangky"))
    own, typed, photo, sticker = handle.seen  # the group message never reaches the engine
    assert own.contact.user_id == "42" and typed.contact.user_id is None
    assert photo.photo.size == 2_000_000 and photo.photo.platform_file_id == "PHOTO1" and not photo.photo.as_document
    assert sticker.unsupported
    assert [p["action"] for n, p in request.calls if n == "sendChatAction"] == ["typing"]  # for the photo


async def test_photo_fetch_downloads_through_get_file(tg) -> None:
    app, request, handle, f = await tg()
    request.files["PHOTO1"] = b"\xff\xd8jpeg bytes"
    await app.process_update(f.photo(42))
    assert not any(n == "getFile" for n, _ in request.calls)  # nothing downloaded until a step wants it
    assert await handle.seen[0].photo.fetch() == b"\xff\xd8jpeg bytes"
    assert any(n == "getFile" and p["file_id"] == "PHOTO1" for n, p in request.calls)


async def test_long_text_is_split_under_limit_keyboard_on_last_page(tg) -> None:
    long = "\n".join(f"{i}. {esc('<Nguyễn Văn An>')} — lớp 4A1" for i in range(400))
    app, request, _, f = await tg(Outgoing(text=long, options=[Option("k", "OK")]))
    await app.process_update(f.text(42, "x"))
    pages = request.sent()
    assert len(pages) >= 3 and all(len(p["text"]) <= 4096 for p in pages)
    assert "reply_markup" not in pages[0] and pages[-1]["reply_markup"]["inline_keyboard"][0][0]["text"] == "OK"
    assert "\n".join(p["text"] for p in pages) == long


def test_split_text_cuts_monster_lines() -> None:
    pages = split_text("a " * 5000, limit=100)
    assert all(len(p) <= 100 for p in pages) and "".join(pages).replace(" ", "") == "a" * 5000


async def test_replies_go_to_the_chat_they_answer(tg) -> None:
    # Messages for other people are outbox rows sent by the deliverer, never by the reply path.
    app, request, _, f = await tg(Outgoing(text="đã lưu"), Outgoing(text="câu hỏi tiếp theo"))
    await app.process_update(f.text(42, "x"))
    assert [int(p["chat_id"]) for p in request.sent()] == [42, 42]


async def test_handler_error_gets_apology_not_trace(tg, caplog) -> None:
    app, request, _, f = await tg()

    async def broken(_incoming):
        raise RuntimeError("database exploded")

    app.handlers[0][0].callback.__self__.handle = broken
    await app.process_update(f.text(42, "xin chào"))
    texts = request.texts(42)
    assert texts and "Xin lỗi" in texts[-1] and "exploded" not in texts[-1]
    assert "error while handling an update" in caplog.text


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (502, None), ("timeout", None), (429, 7)])
async def test_reply_is_retried_after_5xx_timeouts_and_429(tg, status, retry_after) -> None:
    app, request, _, f = await tg(Outgoing(text="Câu hỏi tiếp theo"))
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    app.handlers[0][0].callback.__self__.sleep = fake_sleep
    request.fail("sendMessage", status, times=2, retry_after=retry_after)
    await app.process_update(f.text(42, "x"))
    assert request.texts(42) == ["Câu hỏi tiếp theo"]
    assert slept == ([7, 7] if retry_after else [0.5, 1.0])


async def test_reply_gives_up_after_attempts_and_apologises(tg, caplog) -> None:
    app, request, _, f = await tg(Outgoing(text="Câu hỏi"))

    async def no_sleep(_s: float) -> None:
        return None

    app.handlers[0][0].callback.__self__.sleep = no_sleep
    request.fail("sendMessage", 500, times=4)
    await app.process_update(f.text(42, "x"))
    assert "error while handling an update" in caplog.text  # recorded, not silently lost
    assert request.texts(42) and "Xin lỗi" in request.texts(42)[-1]
