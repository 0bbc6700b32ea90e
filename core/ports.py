"""The contracts between the layers and the outside world: how a message reaches a person, and how a
failure is read. One definition each; the channels (``bot/``) implement them, the deliverer uses them.

A sender only says how a failure should be read; the deliverer decides what to do about it:

- ``RetryLater``: timeouts, 5xx, 429 -> the notification stays pending, tried again with backoff (never
  before ``retry_after`` when the platform said so).
- ``Unreachable``: the person blocked the bot, the chat is gone -> that chat identity is marked blocked and
  the person's next channel is tried; the failure is recorded on the notification.
- ``DeliveryError`` (anything else): this message cannot go out on this channel (a bad request): the next
  channel is tried, the identity is left alone.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.messages import Outgoing


class DeliveryError(Exception):
    """The message could not be delivered on this channel."""


class RetryLater(DeliveryError):
    """A transient failure: try again later (not before ``retry_after`` seconds when the platform said)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Unreachable(DeliveryError):
    """The person cannot be reached on this chat (blocked the bot, chat not found, account deactivated)."""


@runtime_checkable
class ChannelSender(Protocol):
    channel: str  # "telegram" | "zalo"

    async def send(self, chat_id: str, message: Outgoing) -> None:
        """Deliver one message; raises RetryLater / Unreachable / DeliveryError."""
        ...


class Mailer(Protocol):
    """Sends one plain-text e-mail; raises RetryLater / DeliveryError."""

    async def send(self, to: str, subject: str, body: str) -> None: ...

    async def __call__(self, to: str, subject: str, body: str) -> None: ...
