"""A small driver for engine tests: talk to a ``ConversationEngine`` as one person on one channel.

    eng = make_engine(sqlite_engine, programme, clock)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])      # already linked (console-style)
    replies = await teacher.say("/dangky")
    await teacher.tap("Nam")                # tap the option whose label contains "Nam" (or its key)
    await teacher.photo(jpeg_bytes)
    assert "Đã lưu" in teacher.text         # all texts of the last replies, joined, tags stripped

Each message gets a fresh message id (so dedupe does not swallow it) unless one is given; ``resend()``
delivers the previous message again with the same id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from conversations.engine import ConversationEngine
from core.clock import FixedClock
from core.messages import Contact, DocumentInput, Incoming, Option, Outgoing, PhotoInput, plain_text
from core.programme import Programme
from scheduler.delivery import recipients
from storage.models import Notification
from storage.outbox import NOTICE

_ids = itertools.count(1)


@dataclass(frozen=True)
class Notice:
    """A message the last step queued for someone else, and the chat the deliverer will try first."""

    recipient_id: int
    text: str
    chat_id: str | None
    channel: str | None


def make_engine(db: Engine, programme: Programme, clock: FixedClock, **kwargs) -> ConversationEngine:
    return ConversationEngine(db=db, programme=programme, clock=clock, **kwargs)


class Chat:
    def __init__(
        self, engine: ConversationEngine, user_id: str, channel: str = "telegram", chat_id: str | None = None
    ) -> None:
        self.engine = engine
        self.user_id = str(user_id)
        self.channel = channel
        self.chat_id = chat_id or self.user_id
        self.replies: list[Outgoing] = []
        self.notifications: list[Notice] = []  # queued in the outbox by the last message
        self.last: Incoming | None = None

    @classmethod
    async def linked(
        cls, engine: ConversationEngine, phone: str, channel: str = "telegram", user_id: str | None = None
    ) -> Chat:
        """A person already linked to ``phone`` (uses ``link_directly``, as the console does)."""
        chat = cls(engine, user_id or f"{channel}-{phone.lstrip('+')}", channel)
        engine.link_directly(channel=channel, external_id=chat.user_id, chat_id=chat.chat_id, phone=phone)
        return chat

    # --- sending --------------------------------------------------------------------------------------------

    async def send(self, **fields) -> list[Outgoing]:
        message_id = fields.pop("message_id", None) or f"m{next(_ids)}"
        incoming = Incoming(
            channel=self.channel,
            user_id=self.user_id,
            chat_id=self.chat_id,
            received_at=self.engine.clock.now(),
            message_id=message_id,
            **fields,
        )
        return await self.deliver(incoming)

    async def deliver(self, incoming: Incoming) -> list[Outgoing]:
        self.last = incoming
        before = self._last_notification_id()
        self.replies = await self.engine.handle(incoming)
        self.notifications = self._notices_since(before)
        return self.replies

    def _last_notification_id(self) -> int:
        with Session(self.engine.db) as s:
            return s.execute(select(func.coalesce(func.max(Notification.id), 0))).scalar_one()

    def _notices_since(self, after: int) -> list[Notice]:
        with Session(self.engine.db) as s:
            rows = list(
                s.execute(
                    select(Notification)
                    .where(Notification.id > after, Notification.rule == NOTICE)
                    .order_by(Notification.id)
                ).scalars()
            )
            _, chats = recipients(s, rows)
        out = []
        for r in rows:
            first = (chats.get(r.recipient_id) or [None])[0]
            out.append(Notice(r.recipient_id, r.text, first and first.chat_id, first and first.channel))
        return out

    async def say(self, text: str) -> list[Outgoing]:
        return await self.send(text=text)

    async def resend(self) -> list[Outgoing]:
        """The previous message delivered again (same message id)."""
        assert self.last is not None
        return await self.deliver(replace(self.last))

    async def tap(self, label_or_key: str) -> list[Outgoing]:
        """Tap an option of the latest replies: by exact key, else by a label containing the text."""
        return await self.send(choice=self.key(label_or_key))

    async def tap_key(self, key: str) -> list[Outgoing]:
        """Send any callback data, e.g. a stale or forged key."""
        return await self.send(choice=key)

    async def photo(self, data: bytes, *, mime: str = "image/jpeg", caption: str | None = None) -> list[Outgoing]:
        async def fetch() -> bytes:
            return data

        return await self.send(photo=PhotoInput(fetch=fetch, mime_type=mime, size=len(data)), text=caption)

    async def document(self, data: bytes, name: str = "danh-sach.xlsx", *, size: int | None = None) -> list[Outgoing]:
        async def fetch() -> bytes:
            return data

        doc = DocumentInput(fetch=fetch, file_name=name, size=len(data) if size is None else size)
        return await self.send(document=doc)

    @property
    def documents(self) -> list[Outgoing]:
        return [o for o in self.replies if o.document is not None]

    async def contact(self, phone: str, *, user_id: str | None = "self") -> list[Outgoing]:
        owner = self.user_id if user_id == "self" else user_id
        return await self.send(contact=Contact(phone=phone, user_id=owner))

    # --- reading ----------------------------------------------------------------------------------------------

    @property
    def options(self) -> list[Option]:
        return [o for out in self.replies for o in out.options]

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.options]

    @property
    def text(self) -> str:
        """Texts of the latest replies to this chat, tags stripped."""
        return "\n".join(plain_text(o.text) for o in self.replies if o.text)

    def key(self, label_or_key: str) -> str:
        opts = self.options
        for o in opts:
            if o.key == label_or_key:
                return o.key
        matches = [o for o in opts if label_or_key.lower() in o.label.lower()]
        if not matches:
            raise AssertionError(f"no option {label_or_key!r} in {[o.label for o in opts]}\n{self.text}")
        exact = [o for o in matches if o.label.lower() == label_or_key.lower()]
        return (exact or matches)[0].key

    def has_option(self, label: str) -> bool:
        return any(label.lower() in o.label.lower() for o in self.options)


async def fill(chat: Chat, *answers: str) -> list[Outgoing]:
    """Answer several questions in a row: 'tap:Label' taps, anything else is typed."""
    for answer in answers:
        if answer.startswith("tap:"):
            await chat.tap(answer[4:])
        else:
            await chat.say(answer)
    return chat.replies


def media_dir(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir(exist_ok=True)
    return path


# /dangky asks for the guardian's consent first (issue 19): tap the "agreed" answer.
CONSENT_LABEL = "Phụ huynh đã đồng ý"
CONSENT = f"tap:{CONSENT_LABEL}"
