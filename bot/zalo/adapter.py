"""Zalo updates -> ``Incoming``; the engine's ``Outgoing`` -> Zalo messages.

Zalo has no buttons, so options are shown numbered and a reply "2" must come back as the second option's
key. That map lives here, in memory, per chat. After a restart it is gone; the text "2" then goes to the
engine as typed, which matches option labels typed as text and asks again when it cannot: a lost map
costs a question, never a wrong answer.

Photos arrive as a URL that expires: it is downloaded at once, before the engine sees the message, and
kept in a small LRU by message id so a redelivered update does not download it again.

Updates are read for what they carry: ``event_name`` when present (``message.text.received``,
``message.image.received``, ``message.sticker.received``, ``message.voice.received`` with ``voice_url``,
``message.unsupported.received``), else ``message_type`` (``CHAT_PHOTO`` ...), else the fields themselves.
A voice message and a message the platform hides from bots (``message.unsupported.received``: files,
protected accounts such as minors') get a friendly answer saying what the bot can take.

A reply that still fails after the client's retries (a 403 "internal error", 5xx ...) is logged, and the
person is NOT told their message failed: the engine already saved the step, and saying otherwise mid-form
invites answering twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.zalo.api import ZaloApi, ZaloApiError
from bot.zalo.render import ZaloPhoto, ZaloRenderer, ZaloText
from conversations.engine import UNSUPPORTED
from core.clock import Clock, SystemClock
from core.i18n import T
from core.messages import Incoming, Option, Outgoing, PhotoInput

log = logging.getLogger(__name__)

CHANNEL = "zalo"
MAX_PHOTO_BYTES = 20 * 1024 * 1024
SLOW_COMMANDS = ("tonghop", "xuatfile")

Handle = Callable[[Incoming], Awaitable[list[Outgoing]]]

PHOTO_FAILED = T(
    vi="Không tải được ảnh bạn vừa gửi (đường truyền chập chờn hoặc ảnh đã hết hạn). Vui lòng gửi lại ảnh.",
    en="The photo you sent could not be downloaded (network trouble or the link expired). Please send it again.",
)
PHOTO_TOO_BIG = T(
    vi="Ảnh bạn gửi quá lớn (tối đa 20 MB). Vui lòng chụp lại hoặc gửi ảnh nhỏ hơn.",
    en="That photo is too large (20 MB at most). Please send a smaller one.",
)
SORRY = T(
    vi="Xin lỗi, hệ thống đang gặp sự cố nên chưa xử lý được tin nhắn này. Thông tin bạn đã nhập vẫn được "
    "giữ; vui lòng thử lại sau ít phút.",
    en="Sorry, something went wrong and this message was not handled. What you entered is kept; please try "
    "again in a few minutes.",
)

VOICE_NOTE = T(
    vi="Bot chưa nghe được tin nhắn thoại. Vui lòng gõ chữ (hoặc gõ số của lựa chọn) hay gửi ảnh.",
    en="The bot cannot listen to voice messages. Please type your answer (or the number of an option) or send a photo.",
)
HIDDEN_NOTE = T(
    vi="Bot không xem được tin nhắn này: Zalo không chuyển nội dung của nó cho bot (tệp, video, hoặc tin từ tài "
    "khoản được Zalo bảo vệ). Bot đọc được chữ và ảnh: vui lòng gõ chữ hoặc gửi ảnh.",
    en="The bot cannot see this message: Zalo does not pass its content on to bots (files, videos, or messages "
    "from accounts Zalo protects). The bot reads text and photos: please type or send a photo.",
)

TEXT_EVENT = "message.text.received"
IMAGE_EVENT = "message.image.received"
STICKER_EVENT = "message.sticker.received"
VOICE_EVENT = "message.voice.received"
HIDDEN_EVENT = "message.unsupported.received"
KNOWN_EVENTS = (TEXT_EVENT, IMAGE_EVENT, STICKER_EVENT, VOICE_EVENT, HIDDEN_EVENT)
NOTES = {VOICE_EVENT: VOICE_NOTE, HIDDEN_EVENT: HIDDEN_NOTE}


class OptionMemory:
    """Per chat, the options last shown, so a typed number maps back to an option key. Bounded LRU."""

    def __init__(self, max_chats: int = 10_000) -> None:
        self.max_chats = max_chats
        self._by_chat: OrderedDict[str, tuple[Option, ...]] = OrderedDict()

    def remember(self, chat_id: str, options: Sequence[Option]) -> None:
        self._by_chat[chat_id] = tuple(options)
        self._by_chat.move_to_end(chat_id)
        while len(self._by_chat) > self.max_chats:
            self._by_chat.popitem(last=False)

    def forget(self, chat_id: str) -> None:
        self._by_chat.pop(chat_id, None)

    def choice_for(self, chat_id: str, text: str) -> str | None:
        """The option key for a reply such as "2" or "2.", if that chat was last shown options."""
        token = text.strip().rstrip(".)")
        options = self._by_chat.get(chat_id)
        if not options or not token.isdecimal():
            return None
        index = int(token)
        if not 1 <= index <= len(options):
            return None
        return options[index - 1].key


class PhotoCache:
    """Recently downloaded photos by message id; bounded in count and bytes."""

    def __init__(self, *, max_items: int = 32, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, str | None]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> tuple[bytes, str | None] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, data: bytes, mime: str | None) -> None:
        if key in self._items:
            return
        self._items[key] = (data, mime)
        self._bytes += len(data)
        while self._items and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
            _, (old, _) = self._items.popitem(last=False)
            self._bytes -= len(old)


class PhotoDownloadError(Exception):
    def __init__(self, reason: str, *, too_big: bool = False) -> None:
        super().__init__(reason)
        self.too_big = too_big


@dataclass(slots=True)
class ParsedUpdate:
    """An update the engine should see, and the photo URL to fetch first (if any)."""

    incoming: Incoming
    photo_url: str | None = None
    note: T | None = None  # said instead of the engine's generic "cannot read this kind of message"


def parse_update(update: dict[str, Any], *, clock: Clock, memory: OptionMemory | None = None) -> ParsedUpdate | None:
    """The engine's view of a Zalo update, or None for what the bot ignores (groups, bots, junk)."""
    if not isinstance(update, dict):
        return None
    msg = update.get("message")
    if not isinstance(msg, dict):
        return None
    event = _event_of(update, msg)
    sender = msg.get("from") if isinstance(msg.get("from"), dict) else {}
    chat = msg.get("chat") if isinstance(msg.get("chat"), dict) else {}
    user_id = _id(sender.get("id"))
    chat_id = _id(chat.get("id")) or user_id
    if not user_id or not chat_id or sender.get("is_bot"):
        return None
    if str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE":
        # Children's data is never discussed in group chats.
        log.info("zalo: ignored a %s message in a group chat", event or "?")
        return None
    base: dict[str, Any] = dict(
        channel=CHANNEL,
        user_id=user_id,
        chat_id=chat_id,
        received_at=_received_at(msg.get("date"), clock),
        message_id=_id(msg.get("message_id")) or None,
        display_name=_name(sender),
    )
    if event == TEXT_EVENT:
        text = str(msg.get("text") or "")
        choice = memory.choice_for(chat_id, text) if memory is not None else None
        if choice is not None:
            return ParsedUpdate(Incoming(**base, choice=choice))
        return ParsedUpdate(Incoming(**base, text=text))
    if event == IMAGE_EVENT:
        url = msg.get("photo_url") or msg.get("photo") or msg.get("url")
        caption = msg.get("caption")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return ParsedUpdate(Incoming(**base, text=str(caption) if caption else None), photo_url=url)
        return ParsedUpdate(Incoming(**base, unsupported=True))
    # Stickers, voice, and messages the platform does not show bots (protected users, files ...).
    return ParsedUpdate(Incoming(**base, unsupported=True), note=NOTES.get(event))


def _event_of(update: dict[str, Any], msg: dict[str, Any]) -> str:
    """The event, from ``event_name`` if known, else ``message_type``, else what the message carries."""
    event = str(update.get("event_name") or "").strip()
    if event in KNOWN_EVENTS:
        return event
    kind = str(msg.get("message_type") or "").upper()
    for marks, name in (
        (("PHOTO", "IMAGE"), IMAGE_EVENT),
        (("VOICE", "AUDIO"), VOICE_EVENT),
        (("STICKER",), STICKER_EVENT),
        (("TEXT",), TEXT_EVENT),
    ):
        if any(mark in kind for mark in marks):
            return name
    if isinstance(msg.get("text"), str):
        return TEXT_EVENT
    if msg.get("voice_url"):
        return VOICE_EVENT
    if msg.get("sticker"):
        return STICKER_EVENT
    if msg.get("photo_url") or msg.get("photo"):
        return IMAGE_EVENT
    return event or HIDDEN_EVENT


def _name(sender: dict[str, Any]) -> str:
    """``display_name`` as documented; ``name`` / ``first_name`` as some answers carry; "" when absent."""
    for key in ("display_name", "name"):
        value = sender.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    parts = [sender.get(k) for k in ("first_name", "last_name")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def _id(value: object) -> str:
    return str(value).strip() if value is not None and str(value).strip() else ""


def _received_at(date_ms: object, clock: Clock) -> datetime:
    try:
        value = int(date_ms)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return clock.now()
    if value < 10**11:  # seconds, not milliseconds: still a usable time
        value *= 1000
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return clock.now()


class ZaloChannel:
    """Feeds the engine and renders its answers. Updates from one chat are handled one at a time, in the
    order they arrived; different chats run side by side up to ``max_concurrency``."""

    def __init__(
        self,
        *,
        api: ZaloApi,
        handle: Handle,
        renderer: ZaloRenderer | None = None,
        clock: Clock | None = None,
        memory: OptionMemory | None = None,
        http: httpx.AsyncClient | None = None,
        language: str = "vi",
        max_photo_bytes: int = MAX_PHOTO_BYTES,
        max_concurrency: int = 8,
    ) -> None:
        self.api = api
        self.handle = handle
        self.renderer = renderer or ZaloRenderer(language=language)
        self.clock = clock or SystemClock()
        self.memory = memory if memory is not None else OptionMemory()
        self.http = http or api.client
        self.language = language
        self.max_photo_bytes = max_photo_bytes
        self.photos = PhotoCache()
        self._sem = asyncio.Semaphore(max_concurrency)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tasks: set[asyncio.Task] = set()

    # --- ordering ---------------------------------------------------------------------------------------

    def dispatch(self, update: dict[str, Any]) -> asyncio.Task:
        """Schedule an update; returns at once (the webhook answers the platform before the engine runs)."""
        chat = _chat_key(update)
        lock, users = self._locks.get(chat, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[chat] = (lock, users + 1)
        task = asyncio.create_task(self._ordered(chat, lock, update), name=f"zalo-update-{chat}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _ordered(self, chat: str, lock: asyncio.Lock, update: dict[str, Any]) -> None:
        try:
            async with lock, self._sem:
                await self.process(update)
        except Exception:
            log.exception("zalo: error while handling an update")
            await self._apologise(update)
        finally:
            held, users = self._locks[chat]
            if users <= 1:
                del self._locks[chat]
            else:
                self._locks[chat] = (held, users - 1)

    async def drain(self, timeout: float = 30.0) -> None:
        """Let updates already received finish (graceful stop)."""
        if not self._tasks:
            return
        done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("zalo: %d updates still running at shutdown were cancelled", len(pending))

    # --- one update -------------------------------------------------------------------------------------

    async def process(self, update: dict[str, Any]) -> None:
        started = time.perf_counter()
        parsed = parse_update(update, clock=self.clock, memory=self.memory)
        if parsed is None:
            return
        incoming = parsed.incoming
        if parsed.photo_url is not None or incoming.command in SLOW_COMMANDS:
            await self._typing(incoming.chat_id)
        if parsed.photo_url is not None:
            try:
                incoming.photo = await self._photo(parsed.photo_url, incoming.message_id)
            except PhotoDownloadError as exc:
                log.warning("zalo: photo download failed: %s", exc)
                notice = PHOTO_TOO_BIG if exc.too_big else PHOTO_FAILED
                await self._send(incoming.chat_id, Outgoing(text=notice(self.language)))
                return
        replies = await self.handle(incoming)
        if parsed.note is not None:
            replies = _with_note(replies, parsed.note, self.language)
        try:
            await self.deliver(incoming, replies)
        except ZaloApiError as exc:
            # The step is saved; only its answer is lost. No "your message failed" (it did not).
            log.warning(
                "zalo: reply to user=%s not delivered after retries (%s); the step itself was saved",
                incoming.user_id,
                exc,
            )
            return
        log.info(
            "update handled channel=zalo user=%s kind=%s replies=%d ms=%.1f",
            incoming.user_id,
            _kind(incoming),
            len(replies),
            (time.perf_counter() - started) * 1000,
        )

    async def deliver(self, incoming: Incoming, replies: Sequence[Outgoing]) -> None:
        shown_options = False
        for out in replies:
            shown_options = shown_options or bool(out.options)
            await self._send(incoming.chat_id, out)
        if not shown_options and replies:
            # The question answered by number is gone: a later "2" is text again (a count, a class ...).
            self.memory.forget(incoming.chat_id)

    async def _send(self, chat_id: str, out: Outgoing) -> None:
        await send_rendered(self.api, self.renderer, chat_id, out, memory=self.memory)

    async def _typing(self, chat_id: str) -> None:
        try:
            await self.api.send_chat_action(chat_id=chat_id, action="typing")
        except ZaloApiError as exc:
            log.debug("zalo typing action failed: %s", exc)

    async def _photo(self, url: str, message_id: str | None) -> PhotoInput:
        key = message_id or url
        cached = self.photos.get(key)
        if cached is None:
            data, mime = await self._download(url)
            self.photos.put(key, data, mime)
        else:
            data, mime = cached

        async def fetch() -> bytes:
            return data

        return PhotoInput(
            fetch=fetch, mime_type=mime, size=len(data), file_name=None, as_document=False, platform_file_id=message_id
        )

    async def _download(self, url: str) -> tuple[bytes, str | None]:
        try:
            async with self.http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise PhotoDownloadError(f"HTTP {response.status_code}")
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_photo_bytes:
                    raise PhotoDownloadError(f"{declared} bytes", too_big=True)
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > self.max_photo_bytes:
                        raise PhotoDownloadError(f"over {self.max_photo_bytes} bytes", too_big=True)
                    chunks.append(chunk)
                mime = response.headers.get("Content-Type", "").split(";")[0].strip() or None
                return b"".join(chunks), mime
        except httpx.HTTPError as exc:
            raise PhotoDownloadError(type(exc).__name__) from None

    async def _apologise(self, update: dict[str, Any]) -> None:
        chat = _chat_key(update)
        if chat == "?":
            return
        try:
            await self.api.send_message(chat_id=chat, text=SORRY(self.language))
        except ZaloApiError:
            pass


async def send_rendered(
    api: ZaloApi, renderer: ZaloRenderer, chat_id: str, out: Outgoing, *, memory: OptionMemory | None = None
) -> None:
    """Render one Outgoing and send its parts in order (shared by replies and reminders)."""
    messages = renderer.render(out)
    for message in messages:
        if isinstance(message, ZaloPhoto):
            await api.send_photo(chat_id=chat_id, photo=message.url, caption=message.caption)
        elif isinstance(message, ZaloText):
            await api.send_message(chat_id=chat_id, text=message.text)
    if out.options and memory is not None:
        memory.remember(chat_id, out.options)


def _with_note(replies: list[Outgoing], note: T, language: str) -> list[Outgoing]:
    """The engine's generic "cannot read this" replaced by the Zalo-specific note (in the same language)."""
    generic = {UNSUPPORTED(lang): lang for lang in ("vi", "en")}
    out = list(replies)
    for i, out_msg in enumerate(out):
        lang = generic.get(out_msg.text or "")
        if lang is not None:
            out[i] = replace(out_msg, text=note(lang))
            return out
    return [Outgoing(text=note(language)), *out]


def _chat_key(update: dict[str, Any]) -> str:
    msg = update.get("message") if isinstance(update, dict) else None
    if not isinstance(msg, dict):
        return "?"
    chat = msg.get("chat") if isinstance(msg.get("chat"), dict) else {}
    sender = msg.get("from") if isinstance(msg.get("from"), dict) else {}
    return _id(chat.get("id")) or _id(sender.get("id")) or "?"


def _kind(incoming: Incoming) -> str:
    if incoming.command:
        return f"/{incoming.command}"
    if incoming.choice is not None:
        return "choice"
    if incoming.photo is not None:
        return "photo"
    return "unsupported" if incoming.unsupported else "text"
