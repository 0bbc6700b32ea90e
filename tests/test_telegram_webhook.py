"""The Telegram webhook endpoint: secret checked, junk refused, 200 only once the update was processed."""

from __future__ import annotations

import asyncio

import aiohttp
from telegram import Bot

from bot.telegram_webhook import SECRET_HEADER, TelegramWebhook
from tests.e2e.harness import free_port
from tests.telegram_offline import TOKEN, OfflineRequest

UPDATE = {
    "update_id": 7,
    "message": {
        "message_id": 3,
        "date": 1637200000,
        "text": "xin chào",
        "chat": {"id": 1001, "type": "private"},
        "from": {"id": 1001, "is_bot": False, "first_name": "Lan"},
    },
}


class StubApplication:
    def __init__(self) -> None:
        self.bot = Bot(TOKEN, request=OfflineRequest())
        self.processed: list[int] = []
        self.release = asyncio.Event()

    async def process_update(self, update) -> None:
        await self.release.wait()
        self.processed.append(update.update_id)


async def test_webhook_checks_the_secret_and_answers_after_processing() -> None:
    app = StubApplication()
    hook = TelegramWebhook(app, secret="s3cret-token-123")  # type: ignore[arg-type]
    port = free_port()
    await hook.start("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/telegram"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=UPDATE) as r:
                assert r.status == 403
            async with http.post(url, json=UPDATE, headers={SECRET_HEADER: "nope"}) as r:
                assert r.status == 403
            async with http.post(url, data=b"{not json", headers={SECRET_HEADER: "s3cret-token-123"}) as r:
                assert r.status == 400
            async with http.post(url, json=[1, 2], headers={SECRET_HEADER: "s3cret-token-123"}) as r:
                assert r.status == 400
            assert app.processed == []
            pending = asyncio.create_task(http.post(url, json=UPDATE, headers={SECRET_HEADER: "s3cret-token-123"}))
            await asyncio.sleep(0.2)
            assert not pending.done()  # no 200 before the step is done: a crash here means a redelivery
            app.release.set()
            resp = await pending
            assert resp.status == 200 and app.processed == [7]
            resp.release()
    finally:
        await hook.stop()
