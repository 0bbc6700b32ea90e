"""Reminders and escalations over Zalo: the scheduler's ``ChannelSender`` for people linked on Zalo.

The outbox decides what to send and when to try again; this only says how a failure should be read.
The platform documents no "user blocked" answer: 403 is its *internal server error*, 404 "invalid access",
429 quota exceeded. So no single answer is read as ``Unreachable``: 403, 404, 429, 5xx, timeouts and a
rejected token are ``RetryLater`` (the reminder is still owed to the person; the operator fixes a token), a
bad request (400: our message, not the person) is ``DeliveryError``. Whether a Zalo chat is unreachable is
decided by the deliverer on evidence: failures that persist over hours while the platform delivers to others
(``scheduler/delivery.py``).
"""

from __future__ import annotations

import logging

from bot.zalo.adapter import CHANNEL, OptionMemory, send_rendered
from bot.zalo.api import ZaloApi, ZaloApiError, ZaloRequestError, ZaloTransientError, ZaloUnauthorized
from bot.zalo.render import PublicMedia, ZaloRenderer
from core.clock import Clock, SystemClock
from core.messages import Outgoing
from core.ports import DeliveryError, RetryLater

log = logging.getLogger(__name__)

# "Invalid access": undocumented beyond its name; not evidence about the person on its own.
RETRY_CODES = frozenset({404})


class ZaloSender:
    channel = CHANNEL

    def __init__(
        self, *, api: ZaloApi, renderer: ZaloRenderer | None = None, memory: OptionMemory | None = None
    ) -> None:
        self.api = api
        self.renderer = renderer or ZaloRenderer()
        self.memory = memory  # share the channel's, so "2" answers a reminder's options too

    @classmethod
    def from_settings(cls, settings, *, clock: Clock | None = None, memory: OptionMemory | None = None) -> ZaloSender:
        if settings.zalo_token is None:
            raise ValueError("FIELDBOT_ZALO_TOKEN is not set")
        api = ZaloApi(token=settings.zalo_token.get_secret_value(), api_url=settings.zalo_api_url)
        media = PublicMedia.from_settings(settings, clock=clock or SystemClock())
        return cls(api=api, renderer=ZaloRenderer(media=media, language=settings.language), memory=memory)

    async def send(self, chat_id: str, message: Outgoing) -> None:
        try:
            await send_rendered(self.api, self.renderer, chat_id, message, memory=self.memory)
        except ZaloTransientError as exc:
            raise RetryLater(str(exc), retry_after=exc.retry_after) from None
        except ZaloUnauthorized as exc:
            log.error("zalo token rejected while sending a reminder: %s", exc)
            raise RetryLater(str(exc)) from None
        except ZaloRequestError as exc:
            if exc.error_code in RETRY_CODES:
                raise RetryLater(str(exc)) from None
            raise DeliveryError(str(exc)) from None
        except ZaloApiError as exc:  # any other platform answer
            raise DeliveryError(str(exc)) from None

    async def aclose(self) -> None:
        await self.api.aclose()
