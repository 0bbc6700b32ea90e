"""The fake Bot API (tests/fakes/telegram_api.py) against python-telegram-bot 22 as shipped: proof that what
the end-to-end tests see is what PTB would see from Telegram."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from openpyxl import Workbook, load_workbook
from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters
from telegram.request import HTTPXRequest

from tests.fakes.telegram_api import FakeTelegram, parse_html

LAN = 5550001
KEYBOARD = InlineKeyboardMarkup(
    [[InlineKeyboardButton("Có", callback_data="yes"), InlineKeyboardButton("Không", callback_data="no")]]
)


def jpeg(size: tuple[int, int] = (1600, 1200)) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.user(LAN, "Lan")
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as b:  # calls getMe
        yield b


# --- Bot -------------------------------------------------------------------------------------------------------


async def test_get_me(bot: Bot, tg: FakeTelegram) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username, me.can_join_groups) == (123456, True, "fieldbot_test_bot", True)
    assert bot.username == "fieldbot_test_bot"
    assert tg.calls[0].method == "getMe"


async def test_send_message_with_keyboard_reads_back(bot: Bot, tg: FakeTelegram) -> None:
    first = await bot.send_message(
        LAN, "  <b>Chào</b> cô &lt;3 &#x27;ok&#x27;  ", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD
    )
    second = await bot.send_message(str(LAN), "2")
    # What PTB parsed: plain text with entities, trimmed; dates in seconds; the bot as sender.
    assert first.text == "Chào cô <3 'ok'" and first.text_html == "<b>Chào</b> cô &lt;3 &#x27;ok&#x27;"
    assert first.from_user.id == bot.id and first.chat.id == LAN
    assert abs(first.date - datetime.now(UTC)) < timedelta(seconds=5)
    assert first.reply_markup == KEYBOARD
    assert second.message_id == first.message_id + 1
    sent = tg.sent[0]
    assert (sent.method, sent.chat_id, sent.parse_mode) == ("sendMessage", LAN, "HTML")
    assert sent.buttons == [("Có", "yes"), ("Không", "no")]
    assert sent.reply_markup == KEYBOARD.to_dict()
    assert [m.text for m in await tg.wait_for_messages(LAN, 2, timeout=1)] == ["Chào cô <3 'ok'", "2"]


async def test_telegram_refusals(bot: Bot) -> None:
    with pytest.raises(BadRequest, match='(?i)can.t parse entities: unsupported start tag "x"'):
        await bot.send_message(LAN, "a <x> b", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)can.t find end tag"):
        await bot.send_message(LAN, "<b>open", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            LAN, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="đ" * 33)]])
        )
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(LAN, "a" * 4097)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999, "who?")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("12345")


def test_html_parse_like_telegram() -> None:
    text, entities = parse_html('Tom & <a href="https://x.vn/?a=1&amp;b=2">Jerry</a> 👍<i>ý</i>')
    assert text == "Tom & Jerry 👍ý"
    assert entities == [
        {"type": "text_link", "offset": 6, "length": 5, "url": "https://x.vn/?a=1&b=2"},
        {"type": "italic", "offset": 14, "length": 1},
    ]  # 👍 is two UTF-16 units


async def test_edits_follow_telegram(bot: Bot, tg: FakeTelegram) -> None:
    msg = await bot.send_message(LAN, "Chọn", reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Chọn", LAN, msg.message_id, reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("Đã chọn", LAN, msg.message_id)  # no markup: keyboard removed
    assert edited.text == "Đã chọn" and edited.reply_markup is None and edited.edit_date is not None
    assert tg.current(LAN, msg.message_id)["text"] == "Đã chọn"
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(LAN, msg.message_id, reply_markup=None)
    assert await bot.delete_message(LAN, msg.message_id) is True
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("again", LAN, msg.message_id)
    assert [m.method for m in tg.messages_to(LAN)] == ["sendMessage", "editMessageText"]


async def test_send_document_bytes_read_back(bot: Bot, tg: FakeTelegram) -> None:
    wb = Workbook()
    wb.active.append(["Trường", "Số máy"])
    wb.active.append(["TH Hòa Bình", 12])
    out = io.BytesIO()
    wb.save(out)
    msg = await bot.send_document(
        LAN, out.getvalue(), filename="tong_hop.xlsx", caption="<b>Tổng hợp</b>", parse_mode=ParseMode.HTML
    )
    assert msg.document.file_name == "tong_hop.xlsx" and msg.caption == "Tổng hợp"
    [sent] = await tg.wait_for_messages(LAN, timeout=1)
    assert sent.file_name == "tong_hop.xlsx" and sent.text == "Tổng hợp" and sent.raw_text == "<b>Tổng hợp</b>"
    rows = list(load_workbook(io.BytesIO(sent.file)).active.values)
    assert rows == [("Trường", "Số máy"), ("TH Hòa Bình", 12)]
    # Re-sending by file_id works like Telegram's.
    again = await bot.send_document(LAN, msg.document.file_id)
    assert tg.sent[-1].file == sent.file and again.document.file_id != msg.document.file_id


async def test_user_photo_get_file_and_download(bot: Bot, tg: FakeTelegram) -> None:
    original = jpeg((1600, 1200))
    update = Update.de_json(tg.user(LAN).send_photo(original, caption="bàn giao"), bot)
    sizes = update.message.photo
    assert [(p.width, p.height) for p in sizes] == [(90, 68), (320, 240), (800, 600), (1280, 960), (1600, 1200)]
    assert sizes[-1].file_size == len(original) and len({p.file_unique_id for p in sizes}) == 5
    tg_file = await bot.get_file(sizes[-1].file_id)
    assert tg_file.file_path.startswith(f"{tg.root}/file/bot{tg.token}/photos/")
    buf = io.BytesIO()
    await tg_file.download_to_memory(buf)
    assert buf.getvalue() == original
    thumb = await (await bot.get_file(sizes[1].file_id)).download_as_bytearray()
    assert Image.open(io.BytesIO(thumb)).size == (320, 240)
    with pytest.raises(BadRequest, match="(?i)invalid file_id"):
        await bot.get_file("nope")


# --- faults ----------------------------------------------------------------------------------------------------


# PTB itself warns, inside RetryAfter.__init__, that retry_after will become a timedelta.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_faults_map_to_ptb_exceptions(bot: Bot, tg: FakeTelegram) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as exc_info:
        await bot.send_message(LAN, "x")
    assert exc_info.value._retry_after == timedelta(seconds=7)
    tg.fail_next("sendMessage", count=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as net:
            await bot.send_message(LAN, "x")
        assert type(net.value) is NetworkError and "Internal Server Error" in str(net.value)
    tg.block(LAN)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(LAN, "x")
    tg.unblock(LAN)
    await bot.send_message(LAN, "now it works")
    assert [m.text for m in tg.sent] == ["now it works"]
    assert [status for _, status, _ in tg.errors] == [429, 500, 500, 403]


async def test_delay_beyond_read_timeout_is_timed_out(tg: FakeTelegram) -> None:
    request = HTTPXRequest(read_timeout=0.2)
    async with Bot(tg.token, base_url=tg.base_url, request=request) as bot:
        tg.fail_next("sendMessage", delay=1.0)  # lost: answered 500 after the client gave up
        with pytest.raises(TimedOut):
            await bot.send_message(LAN, "lost")
        tg.fail_next("sendMessage", delay=0.4, status=200)  # slow, but Telegram did deliver it
        with pytest.raises(TimedOut):
            await bot.send_message(LAN, "slow")
        [msg] = await tg.wait_for_messages(LAN, timeout=2)
        assert msg.text == "slow"


async def test_stop_is_prompt_with_a_pending_long_poll(tg: FakeTelegram) -> None:
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await tg.wait_for_calls("getUpdates", timeout=2)
        started = time.monotonic()
        await asyncio.wait_for(tg.stop(), 3)
        assert time.monotonic() - started < 1.5
        assert await asyncio.wait_for(poll, 3) == ()


# --- long polling -------------------------------------------------------------------------------------------


async def test_long_poll_wakes_on_update_and_honours_offset_limit_allowed(bot: Bot, tg: FakeTelegram) -> None:
    lan = tg.user(LAN)
    assert await bot.get_updates(timeout=0) == ()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.wait_for_calls("getUpdates", 2, timeout=2)
    started = time.monotonic()
    sent = lan.send_text("/start@fieldbot_test_bot abc")
    [update] = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started < 1
    assert update.update_id == sent["update_id"] and update.message.text.startswith("/start")
    assert update.message.entities[0].type == "bot_command" and update.message.entities[0].length == 24
    # Not confirmed yet: returned again; offset confirms it.
    assert len(await bot.get_updates(timeout=0)) == 1
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    for text in ("a", "b", "c"):
        lan.send_text(text)
    assert [u.message.text for u in await bot.get_updates(limit=2)] == ["a", "b"]
    lan.share_contact("0912345678")
    lan.tap("yes", message={"message_id": 1, "chat": lan.as_chat(), "date": 0, "text": "x"})
    kinds = [u.callback_query is not None for u in await bot.get_updates(allowed_updates=["callback_query"])]
    assert kinds == [True]  # messages dropped, as Telegram does with updates nobody asked for


async def test_webhook_blocks_polling_and_commands_are_kept(bot: Bot, tg: FakeTelegram) -> None:
    assert await bot.set_webhook("https://bot.example.vn/tg", secret_token="s3cret-token") is True
    assert tg.webhook["secret_token"] == "s3cret-token"
    assert (await bot.get_webhook_info()).url == "https://bot.example.vn/tg"
    with pytest.raises(Conflict, match="(?i)webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates() == ()
    await bot.set_my_commands([("tonghop", "Tổng hợp")])
    await bot.set_my_commands([("tonghop", "Summary")], language_code="en")
    assert [c.description for c in await bot.get_my_commands(language_code="en")] == ["Summary"]
    assert [c.command for c in await bot.get_my_commands()] == ["tonghop"]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("TongHop", "x")])


async def test_raw_http_bodies_tokens_and_unknown_methods(tg: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"{tg.root}/bot{tg.token}"
        async with http.post(
            f"{base}/sendMessage", json={"chat_id": str(LAN), "text": "json", "reply_markup": KEYBOARD.to_dict()}
        ) as r:
            assert (await r.json())["result"]["reply_markup"] == KEYBOARD.to_dict()
        async with http.post(f"{base}/sendMessage", data={"chat_id": LAN, "text": "form"}) as r:
            assert (await r.json())["ok"] is True
        form = aiohttp.FormData({"chat_id": str(LAN)})
        form.add_field("photo", jpeg((64, 48)), filename="p.jpg", content_type="image/jpeg")
        async with http.post(f"{base}/sendPhoto", data=form) as r:
            assert (await r.json())["result"]["photo"][0]["width"] == 64
        async with http.get(f"{base}/sendChatAction", params={"chat_id": LAN, "action": "typing"}) as r:
            assert (await r.json()) == {"ok": True, "result": True}
        async with http.post(f"{base}/setChatMenuButton", data={"chat_id": LAN}) as r:
            assert (await r.json())["result"] is True
        async with http.post(f"{tg.root}/bot123456:WRONG/getMe") as r:
            assert r.status == 401 and (await r.json())["description"] == "Unauthorized"
        async with http.post(f"{tg.root}/botgarbage/getMe") as r:
            assert r.status == 404
    assert [m.text for m in tg.sent] == ["json", "form", None]
    assert tg.sent[2].file_name == "p.jpg"
    assert tg.calls_of("setChatMenuButton")[0].params == {"chat_id": LAN}
    with pytest.raises(InvalidToken):
        async with Bot("123456:WRONG", base_url=tg.base_url):
            pass


# --- a whole Application ---------------------------------------------------------------------------------------


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text(f"Xin chào {update.effective_user.first_name}", reply_markup=KEYBOARD)


async def _tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer()
    await update.callback_query.edit_message_text(f"Bạn chọn: {update.callback_query.data}")


async def _contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    contact = update.message.contact
    own = contact.user_id == update.effective_user.id
    await update.message.reply_text(f"{contact.phone_number} {'của bạn' if own else 'của người khác'}")


async def _photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_chat_action(update.effective_chat.id, "upload_document")
    data = await (await update.message.photo[-1].get_file()).download_as_bytearray()
    await update.message.reply_text(f"Đã nhận {len(data)} byte")
    await update.message.reply_document(bytes(data), filename="lai.jpg")


async def test_application_long_polling_end_to_end(tg: FakeTelegram) -> None:
    app = Application.builder().token(tg.token).base_url(tg.base_url).base_file_url(tg.base_file_url).build()
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_tap))
    app.add_handler(MessageHandler(filters.CONTACT, _contact))
    app.add_handler(MessageHandler(filters.PHOTO, _photo))
    lan = tg.user(LAN)

    async def scenario() -> None:
        lan.send_text("/start")
        [hello] = await lan.wait_for_messages(timeout=3)
        assert hello.text == "Xin chào Lan" and hello.buttons[0] == ("Có", "yes")
        lan.tap("yes")
        [edit] = await lan.wait_for_messages(timeout=3)
        assert (edit.method, edit.message_id, edit.text) == ("editMessageText", hello.message_id, "Bạn chọn: yes")
        assert tg.calls_of("answerCallbackQuery") and tg.current(LAN, hello.message_id).get("reply_markup") is None
        lan.share_contact("+84912345678")
        lan.share_contact("0987654321", user_id=42)
        assert [m.text for m in await lan.wait_for_messages(2, timeout=3)] == [
            "+84912345678 của bạn",
            "0987654321 của người khác",
        ]
        photo = jpeg((640, 480))
        lan.send_photo(photo)
        text, doc = await lan.wait_for_messages(2, timeout=3)
        assert text.text == f"Đã nhận {len(photo)} byte" and doc.file == photo and doc.file_name == "lai.jpg"
        assert tg.calls_of("sendChatAction")[0].params["action"] == "upload_document"

    await asyncio.wait_for(app.initialize(), 5)
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        await asyncio.wait_for(scenario(), 8)
    finally:
        await asyncio.wait_for(app.updater.stop(), 5)
        await app.stop()
        await app.shutdown()
    assert tg.calls_of("deleteWebhook") and not tg.errors
