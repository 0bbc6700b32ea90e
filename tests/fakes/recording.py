"""A sender and a mailer that record what they were given (and fail when told to)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.messages import Outgoing
from core.ports import RetryLater


@dataclass
class RecordingSender:
    """A ChannelSender that records what it sent; ``fail[chat_id]`` makes a chat raise instead,
    ``fail_photos`` makes every picture raise. Pictures are kept apart, in ``photos``."""

    channel: str = "telegram"
    sent: list[tuple[str, str]] = field(default_factory=list)
    photos: list[tuple[str, bytes]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)
    fail_photos: Exception | None = None
    attempts: list[str] = field(default_factory=list)

    async def send(self, chat_id: str, message: Outgoing) -> None:
        self.attempts.append(chat_id)
        exc = self.fail.get(chat_id) or (self.fail_photos if message.photo is not None else None)
        if exc is not None:
            raise exc
        if message.photo is not None:
            self.photos.append((chat_id, message.photo))
        if message.text:
            self.sent.append((chat_id, message.text))

    def texts(self, chat_id: str) -> list[str]:
        return [t for c, t in self.sent if c == chat_id]


@dataclass
class RecordingMailer:
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    down: bool = False

    async def send(self, to: str, subject: str, body: str) -> None:
        if self.down:
            raise RetryLater("SMTP 127.0.0.1:2525 unreachable: ConnectionRefusedError")
        self.sent.append((to, subject, body))

    async def __call__(self, to: str, subject: str, body: str) -> None:
        await self.send(to, subject, body)
