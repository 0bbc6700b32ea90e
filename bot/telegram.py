"""Telegram channel: python-telegram-bot updates -> ``Incoming``; ``Outgoing`` -> Bot API calls.

This module knows Telegram and nothing about forms: the conversation engine decides what to say, this
decides how it looks (inline keyboards, the contact button, 4,096-character pages, HTML parse mode).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction, MessageLimit, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from core.clock import Clock, SystemClock
from core.i18n import T
from core.messages import Contact, DocumentInput, Incoming, Outgoing, PhotoInput

log = logging.getLogger(__name__)

# python-telegram-bot 22.2+ is moving time periods (RetryAfter.retry_after, ...) from int seconds to timedelta
# and warns on every RetryAfter it builds unless the process opts in; this code reads both (retry_after_seconds).
os.environ.setdefault("PTB_TIMEDELTA", "true")

CHANNEL = "telegram"
IMAGE_MIME_PREFIX = "image/"
CAPTION_LIMIT = MessageLimit.CAPTION_LENGTH
TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH
CONTACT_BUTTON = "📱 Chia sẻ số điện thoại"

Handle = Callable[[Incoming], Awaitable[list[Outgoing]]]


# --- update -> Incoming ------------------------------------------------------------------------------------


def incoming_from_update(update: Update, *, clock: Clock) -> Incoming | None:
    """The engine's view of an update; None for updates the bot ignores (edits, channel posts ...)."""
    now = clock.now()
    if update.callback_query is not None:
        cq = update.callback_query
        chat = cq.message.chat if cq.message is not None else None
        return Incoming(
            channel=CHANNEL,
            user_id=str(cq.from_user.id),
            chat_id=str(chat.id if chat else cq.from_user.id),
            received_at=now,
            message_id=f"cb:{cq.id}",
            choice=cq.data or "",
            display_name=cq.from_user.full_name,
            language=cq.from_user.language_code,
        )
    msg = update.message
    if msg is None or msg.from_user is None:
        return None
    if msg.chat.type != "private":
        return None  # children's data is never discussed in group chats
    base = dict(
        channel=CHANNEL,
        user_id=str(msg.from_user.id),
        chat_id=str(msg.chat.id),
        received_at=now,
        message_id=f"{msg.chat.id}:{msg.message_id}",
        seq=msg.message_id,
        display_name=msg.from_user.full_name,
        language=msg.from_user.language_code,
    )
    if msg.contact is not None:
        c = msg.contact
        return Incoming(
            **base,
            contact=Contact(
                phone=c.phone_number, user_id=str(c.user_id) if c.user_id else None, first_name=c.first_name or ""
            ),
        )
    if msg.photo:
        largest = msg.photo[-1]  # Telegram lists sizes smallest first
        return Incoming(
            **base,
            text=msg.caption,
            photo=_photo_input(msg, largest.file_id, largest.file_size, mime="image/jpeg", name=None, doc=False),
        )
    if msg.document is not None and is_spreadsheet(msg.document.file_name, msg.document.mime_type):
        doc = msg.document
        return Incoming(**base, text=msg.caption, document=_document_input(msg, doc.file_id, doc.file_size, doc))
    if msg.document is not None:  # an image sent "as a file" (full quality): the photo path, as before
        doc = msg.document
        return Incoming(
            **base,
            text=msg.caption,
            photo=_photo_input(msg, doc.file_id, doc.file_size, mime=doc.mime_type, name=doc.file_name, doc=True),
        )
    if msg.text is not None:
        return Incoming(**base, text=msg.text)
    return Incoming(**base, unsupported=True)


def _photo_input(
    msg: Message, file_id: str, size: int | None, *, mime: str | None, name: str | None, doc: bool
) -> PhotoInput:
    bot = msg.get_bot()

    async def fetch() -> bytes:
        tg_file = await bot.get_file(file_id)
        return bytes(await tg_file.download_as_bytearray())

    return PhotoInput(fetch=fetch, file_name=name, mime_type=mime, size=size, as_document=doc, platform_file_id=file_id)


SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv", ".ods")
SPREADSHEET_MIMES = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel",
    "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/csv",
    "text/comma-separated-values",
)


def is_spreadsheet(file_name: str | None, mime: str | None) -> bool:
    """A class list rather than an image sent as a file."""
    if file_name and file_name.lower().endswith(SPREADSHEET_SUFFIXES):
        return True
    return (mime or "").lower() in SPREADSHEET_MIMES


def _document_input(msg: Message, file_id: str, size: int | None, doc) -> DocumentInput:
    bot = msg.get_bot()

    async def fetch() -> bytes:
        tg_file = await bot.get_file(file_id)
        return bytes(await tg_file.download_as_bytearray())

    return DocumentInput(
        fetch=fetch, file_name=doc.file_name, mime_type=doc.mime_type, size=size, platform_file_id=file_id
    )


# --- Outgoing -> Bot API -------------------------------------------------------------------------------------


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pages under ``limit``, cut at line breaks where possible so no tag or word is split."""
    if len(text) <= limit:
        return [text]
    pages: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single monster line: cut at a space
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                pages.append(current)
                current = ""
            pages.append(line[:cut])
            line = line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pages.append(current)
            current = line
        else:
            current = candidate
    if current:
        pages.append(current)
    return pages


def keyboard_for(out: Outgoing):
    if out.options:
        cols = max(1, out.columns)
        rows = [
            [InlineKeyboardButton(o.label[:64], callback_data=o.key) for o in out.options[i : i + cols]]
            for i in range(0, len(out.options), cols)
        ]
        return InlineKeyboardMarkup(rows)
    if out.request_contact:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(CONTACT_BUTTON, request_contact=True)]], resize_keyboard=True, one_time_keyboard=True
        )
    if out.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


async def send_outgoing(bot, chat_id: str | int, out: Outgoing) -> None:
    """Send one Outgoing; the keyboard goes on the last page so buttons sit under the question."""
    markup = keyboard_for(out)
    text = out.text or ""
    if out.photo is not None:
        photo = out.photo.read_bytes() if isinstance(out.photo, Path) else out.photo
        caption = text if len(text) <= CAPTION_LIMIT else None
        await bot.send_photo(
            chat_id,
            photo=photo,
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_markup=markup if caption is not None else None,
        )
        if caption is not None:
            return
    if out.document is not None:
        caption = text if len(text) <= CAPTION_LIMIT else None
        with open(out.document, "rb") as fh:
            await bot.send_document(
                chat_id,
                document=fh,
                filename=out.document_name or out.document.name,
                caption=caption,
                parse_mode=ParseMode.HTML,
                reply_markup=markup if caption is not None else None,
            )
        if caption is not None:
            return
    if not text:
        return
    pages = split_text(text)
    for i, page in enumerate(pages):
        last = i == len(pages) - 1
        await bot.send_message(
            chat_id,
            page,
            parse_mode=ParseMode.HTML,
            reply_markup=markup if last else None,
            disable_web_page_preview=True,
        )


# --- the application ------------------------------------------------------------------------------------------


REPLY_ATTEMPTS = 4
REPLY_BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 60


class TelegramChannel:
    """Handlers that feed the engine and render its answers."""

    def __init__(
        self,
        handle: Handle,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.handle = handle
        self.clock = clock or SystemClock()
        self.sleep = sleep

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        started = time.perf_counter()
        incoming = incoming_from_update(update, clock=self.clock)
        if incoming is None:
            return
        if update.callback_query is not None:
            await self._acknowledge_tap(update)
        if (
            incoming.photo is not None
            or incoming.document is not None
            or incoming.command in ("tonghop", "xuatfile", "maunhap")
        ):
            # A photo or a report takes a moment: show "typing..." so nobody taps twice.
            try:
                await context.bot.send_chat_action(incoming.chat_id, ChatAction.TYPING)
            except TelegramError as exc:
                log.debug("typing action failed: %s", exc)
        replies = await self.handle(incoming)
        for out in replies:
            await self._deliver(context.bot, incoming, out)
        log.info(
            "update handled channel=telegram user=%s kind=%s replies=%d ms=%.1f",
            incoming.user_id,
            _kind(incoming),
            len(replies),
            (time.perf_counter() - started) * 1000,
        )

    async def _acknowledge_tap(self, update: Update) -> None:
        cq = update.callback_query
        try:
            await cq.answer()
            # Show what was chosen and take the buttons away, so an old keyboard cannot be tapped twice.
            if cq.message is not None and isinstance(cq.message, Message) and cq.message.reply_markup:
                label = next(
                    (
                        b.text
                        for row in cq.message.reply_markup.inline_keyboard
                        for b in row
                        if b.callback_data == cq.data
                    ),
                    None,
                )
                if label:
                    await cq.edit_message_reply_markup(reply_markup=None)
        except BadRequest as exc:  # message too old to edit, query expired: harmless
            log.debug("tap acknowledgement skipped: %s", exc)

    async def _deliver(self, bot, incoming: Incoming, out: Outgoing) -> None:
        await self._send_with_retries(bot, incoming.chat_id, out)

    async def _send_with_retries(self, bot, chat_id: str, out: Outgoing) -> None:
        """The engine has already saved the step, so a reply lost to a 5xx or a timeout would leave the
        person without their next question: retry with backoff, honouring 429's retry_after."""
        for attempt in range(1, REPLY_ATTEMPTS + 1):
            try:
                await send_outgoing(bot, chat_id, out)
                return
            except RetryAfter as exc:
                if attempt == REPLY_ATTEMPTS:
                    raise
                await self.sleep(min(retry_after_seconds(exc), MAX_RETRY_AFTER_S))
            except NetworkError as exc:  # 5xx, timeouts, connection resets (TimedOut is a NetworkError)
                if attempt == REPLY_ATTEMPTS:
                    raise
                log.warning("reply failed (%s), attempt %d of %d", exc, attempt, REPLY_ATTEMPTS)
                await self.sleep(REPLY_BACKOFF_S * 2 ** (attempt - 1))


def retry_after_seconds(exc: RetryAfter) -> float:
    """PTB 22 is moving retry_after from int to timedelta and warns on access; accept both quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _kind(incoming: Incoming) -> str:
    if incoming.command:
        return f"/{incoming.command}"
    if incoming.choice is not None:
        return "tap"
    if incoming.photo is not None:
        return "photo"
    if incoming.document is not None:
        return "document"
    if incoming.contact is not None:
        return "contact"
    return "unsupported" if incoming.unsupported else "text"


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(
                update.effective_chat.id,
                "Xin lỗi, hệ thống đang gặp sự cố nên chưa xử lý được tin nhắn này. "
                "Thông tin bạn đã nhập vẫn được giữ; vui lòng thử lại sau ít phút.",
            )
        except TelegramError:
            pass


def register_handlers(application: Application, channel: TelegramChannel) -> None:
    """The one place that decides which updates reach the engine."""
    application.add_handler(CallbackQueryHandler(channel.on_update))
    application.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED, channel.on_update))
    application.add_error_handler(on_error)


MINI_APP_BUTTON = T(vi="Tiến độ", en="Progress")  # the menu button that opens the web view as a Mini App


async def set_commands(application: Application) -> None:
    from conversations.menu import COMMANDS

    await application.bot.set_my_commands([BotCommand(cmd, desc("vi")) for cmd, desc in COMMANDS])
    await application.bot.set_my_commands([BotCommand(cmd, desc("en")) for cmd, desc in COMMANDS], language_code="en")
    web_app_url = application.bot_data.get("web_app_url")
    if web_app_url:
        # The menu button opens the web view as a Mini App; it signs in by Telegram's signed initData.
        from telegram import MenuButtonWebApp, WebAppInfo

        # One button for every chat (Telegram's default menu button has no per-language form): in the
        # deployment's language (FIELDBOT_LANGUAGE), Vietnamese by default.
        text = MINI_APP_BUTTON(application.bot_data.get("language", "vi"))
        await application.bot.set_chat_menu_button(
            menu_button=MenuButtonWebApp(text=text, web_app=WebAppInfo(url=web_app_url))
        )


def build_application(
    *,
    token: str,
    api_url: str,
    handle: Handle,
    clock: Clock | None = None,
    rate_limit: bool = True,
    overall_per_second: float = 30.0,
    request=None,
    set_my_commands: bool = True,
    web_app_url: str | None = None,
    language: str = "vi",
) -> Application:
    builder: ApplicationBuilder = (
        Application.builder().token(token).base_url(f"{api_url}/bot").base_file_url(f"{api_url}/file/bot")
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    else:
        builder = builder.connect_timeout(10).read_timeout(20).write_timeout(30).pool_timeout(10)
    if rate_limit:
        # Overall 30/s (this process's share of it: FIELDBOT_PROCESSES) and retries on 429 for replies;
        # reminders have their own per-chat limiter on top.
        builder = builder.rate_limiter(AIORateLimiter(overall_max_rate=overall_per_second, max_retries=3))
    if set_my_commands:
        builder = builder.post_init(set_commands)
    application = builder.build()
    if web_app_url and web_app_url.startswith("https://"):  # Telegram opens Mini Apps over HTTPS only
        application.bot_data["web_app_url"] = web_app_url
    application.bot_data["language"] = language
    register_handlers(application, TelegramChannel(handle, clock=clock))
    return application
