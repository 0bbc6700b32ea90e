"""Reminders and escalations over Telegram: the scheduler's ``ChannelSender`` for people linked on Telegram.

Rendering is the channel's own (``bot.telegram.send_outgoing``: HTML parse mode, pages under 4,096
characters cut at line breaks, photo and document captions), so a reminder looks like every other bot
message. What this adds is pacing and the reading of failures:

- every Bot API request first waits for the rate limiter (30/s overall, 1/s per chat);
- ``RetryAfter`` pauses the whole limiter (Telegram's 429 is for the whole bot) and becomes ``RetryLater``;
- timeouts, network errors, 5xx and a rejected token are ``RetryLater``;
- ``Forbidden`` (blocked, deactivated) and "chat not found" are ``Unreachable``; other bad requests are a
  plain ``DeliveryError`` (the message, not the person, is the problem).
"""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from bot.telegram import retry_after_seconds, send_outgoing
from core.messages import Outgoing
from core.ports import DeliveryError, RetryLater, Unreachable
from scheduler.ratelimit import RateLimiter, overall_share

log = logging.getLogger(__name__)

CHANNEL = "telegram"
# BadRequest descriptions that mean the person, not the message, is out of reach.
UNREACHABLE_HINTS = (
    "chat not found",
    "user not found",
    "user is deactivated",
    "bot was blocked",
    "peer_id_invalid",
    "have no rights to send",
)


class _PacedBot:
    """The three send methods ``send_outgoing`` uses, each waiting for the limiter first."""

    def __init__(self, bot: Bot, limiter: RateLimiter) -> None:
        self._bot = bot
        self._limiter = limiter

    async def send_message(self, chat_id, *args, **kwargs):
        await self._limiter.acquire(chat_id)
        return await self._bot.send_message(chat_id, *args, **kwargs)

    async def send_photo(self, chat_id, *args, **kwargs):
        await self._limiter.acquire(chat_id)
        return await self._bot.send_photo(chat_id, *args, **kwargs)

    async def send_document(self, chat_id, *args, **kwargs):
        await self._limiter.acquire(chat_id)
        return await self._bot.send_document(chat_id, *args, **kwargs)


class TelegramSender:
    channel = CHANNEL

    def __init__(self, bot: Bot, *, limiter: RateLimiter | None = None) -> None:
        self.bot = bot
        self.limiter = limiter or RateLimiter()
        self._paced = _PacedBot(bot, self.limiter)

    @classmethod
    def sharing(cls, bot: Bot, *, processes: int) -> TelegramSender:
        """The sender of one of ``processes`` processes using the same bot (FIELDBOT_PROCESSES)."""
        return cls(bot, limiter=RateLimiter(overall_per_second=overall_share(processes)))

    async def send(self, chat_id: str, message: Outgoing) -> None:
        try:
            await send_outgoing(self._paced, chat_id, message)
        except RetryAfter as exc:
            seconds = retry_after_seconds(exc)
            self.limiter.pause(seconds)
            log.warning("telegram flood control: every send paused for %.0f s", seconds)
            raise RetryLater(f"Telegram 429: retry after {seconds:.0f} s", retry_after=seconds) from None
        except Forbidden as exc:
            raise Unreachable(f"Telegram: {exc.message}") from None
        except InvalidToken as exc:
            log.error("telegram token rejected while sending a notification")
            raise RetryLater(f"Telegram token rejected: {exc.message}") from None
        except BadRequest as exc:
            if any(hint in exc.message.lower() for hint in UNREACHABLE_HINTS):
                raise Unreachable(f"Telegram: {exc.message}") from None
            raise DeliveryError(f"Telegram rejected the message: {exc.message}") from None
        except NetworkError as exc:  # TimedOut is a NetworkError; so are 5xx answers
            raise RetryLater(f"Telegram: {exc.message}") from None
        except ChatMigrated as exc:
            raise Unreachable(f"Telegram: chat migrated ({exc.message})") from None
        except TelegramError as exc:
            raise DeliveryError(f"Telegram: {exc.message}") from None
