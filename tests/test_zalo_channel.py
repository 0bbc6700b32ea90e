"""The Zalo adapter over real HTTP on loopback: polling and webhook feed the engine; replies come back.

The engine here is a recorder (what did the adapter make of the update?); the real conversation engine
runs in test_zalo_e2e.py.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.zalo import ZaloConfigError, ZaloService, run_zalo
from bot.zalo.adapter import OptionMemory, ZaloChannel, parse_update
from bot.zalo.api import ZaloApi
from bot.zalo.polling import poll_updates
from bot.zalo.render import TEXT_LIMIT, PublicMedia, ZaloRenderer, split_text
from bot.zalo.webhook import SECRET_HEADER
from core.clock import FixedClock
from core.messages import Incoming, Option, Outgoing
from tests.fakes.zalo_api import TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)

WEBHOOK_SECRET = "hook-Secret-0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


class Recorder:
    """Stands in for the engine: records each Incoming, answers with ``reply(incoming)``."""

    def __init__(self, reply=None) -> None:
        self.seen: list[Incoming] = []
        self.reply = reply or (lambda inc: [Outgoing(text=f"Đã nhận: {inc.text or inc.choice or '?'}")])

    async def handle(self, incoming: Incoming) -> list[Outgoing]:
        self.seen.append(incoming)
        if incoming.photo is not None:
            await incoming.photo.fetch()
        return self.reply(incoming)


async def no_sleep(_: float) -> None:
    return None


class Polling:
    """A ZaloChannel fed by the polling loop against the fake platform, stopped at the end of the test."""

    def __init__(
        self,
        fake: FakeZaloApi,
        engine: Recorder,
        *,
        memory: OptionMemory | None = None,
        media: PublicMedia | None = None,
    ) -> None:
        self.fake = fake
        self.api = ZaloApi(token=TOKEN, api_url=fake.api_url, sleep=no_sleep)
        self.channel = ZaloChannel(
            api=self.api, handle=engine.handle, memory=memory, renderer=ZaloRenderer(media=media)
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            poll_updates(api=self.api, on_update=self.channel.dispatch, stop=self.stop, timeout=5, sleep=no_sleep)
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 2)
        await self.channel.drain(2)
        await self.api.aclose()


@pytest.fixture
async def polling(zalo_fake: FakeZaloApi):
    made: list[Polling] = []

    def start(engine: Recorder, **kw) -> Polling:
        p = Polling(zalo_fake, engine, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        await p.close()


async def test_polling_text_reaches_the_engine_and_the_reply_comes_back(zalo_fake, polling) -> None:
    engine = Recorder()
    polling(engine)
    zalo_fake.push(zalo_fake.text_update("/dangky", user_id="u1", message_id="m-1", date_ms=1637114400123))
    await zalo_fake.wait_sent(1)
    inc = engine.seen[0]
    assert (inc.channel, inc.user_id, inc.chat_id, inc.message_id, inc.command) == ("zalo", "u1", "u1", "m-1", "dangky")
    assert inc.received_at == datetime(2021, 11, 17, 2, 0, 0, 123000, tzinfo=UTC)
    assert inc.display_name == "Cô Lan"
    assert zalo_fake.texts("u1") == ["Đã nhận: /dangky"]


async def test_numbered_answer_maps_to_the_option_and_survives_losing_the_map(zalo_fake, polling) -> None:
    options = [Option("cat:poor", "Hộ nghèo"), Option("cat:near_poor", "Hộ cận nghèo")]
    engine = Recorder(
        lambda inc: (
            [Outgoing(text="Đối tượng?", options=options)] if inc.text == "/dangky" else [Outgoing(text="Số máy?")]
        )
    )
    p = polling(engine)
    zalo_fake.push(zalo_fake.text_update("/dangky", user_id="u1"))
    await zalo_fake.wait_sent(1)
    assert "1. Hộ nghèo\n2. Hộ cận nghèo" in zalo_fake.texts("u1")[0]
    zalo_fake.push(zalo_fake.text_update(" 2 ", user_id="u1"))
    await zalo_fake.wait_sent(2)
    assert engine.seen[1].choice == "cat:near_poor" and engine.seen[1].text is None
    # The question now is a count, not a choice: "2" is text again.
    zalo_fake.push(zalo_fake.text_update("2", user_id="u1"))
    await zalo_fake.wait_sent(3)
    assert engine.seen[2].text == "2" and engine.seen[2].choice is None
    # After a restart the map is gone: the number passes through as typed for the engine to match.
    fresh = OptionMemory()
    update = zalo_fake.text_update("2", user_id="u1")
    assert parse_update(update, clock=p.channel.clock, memory=fresh).incoming.text == "2"
    # An out-of-range number is text too.
    fresh.remember("u1", options)
    assert (
        parse_update(zalo_fake.text_update("7", user_id="u1"), clock=p.channel.clock, memory=fresh).incoming.text == "7"
    )


async def test_long_reply_is_split_under_the_platform_limit_in_order(zalo_fake, polling) -> None:
    lines = [f"{i:03d}. Trần Văn Minh — lớp 4B — cha mất do COVID-19, đã nhận máy" for i in range(150)]
    polling(Recorder(lambda inc: [Outgoing(text="\n".join(lines))]))
    zalo_fake.push(zalo_fake.text_update("/tonghop", user_id="u1"))
    await zalo_fake.wait_sent(len(split_text("\n".join(lines))))
    pages = zalo_fake.texts("u1")
    assert len(pages) >= 4 and all(len(p) <= TEXT_LIMIT for p in pages)
    assert "\n".join(pages).split("\n") == lines
    assert zalo_fake.method_calls("sendChatAction"), "a slow command shows typing first"


async def test_retries_keep_replies_flowing_through_429_and_500(zalo_fake, polling) -> None:
    polling(Recorder())
    zalo_fake.fail_next("sendMessage", status=429, retry_after=1)
    zalo_fake.fail_next("getUpdates", status=500)
    zalo_fake.push(zalo_fake.text_update("xin chào", user_id="u1"))
    await zalo_fake.wait_sent(1)
    zalo_fake.fail_next("sendMessage", status=502)
    zalo_fake.push(zalo_fake.text_update("lần hai", user_id="u1"))
    await zalo_fake.wait_sent(2)
    assert zalo_fake.texts("u1") == ["Đã nhận: xin chào", "Đã nhận: lần hai"]
    assert len(zalo_fake.method_calls("sendMessage")) == 4


async def test_photo_url_downloaded_once_and_handed_over_as_bytes(zalo_fake, polling) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Đã nhận ảnh")])
    polling(engine)
    url = zalo_fake.add_image(b"\xff\xd8\xff" + b"jpeg-bytes" * 100)
    update = zalo_fake.image_update(url, caption="bàn giao", user_id="u1", message_id="img-1")
    zalo_fake.push(update)
    zalo_fake.push(update)  # the platform delivers the same message again
    await zalo_fake.wait_sent(2)
    first, again = engine.seen
    assert first.photo is not None and first.text == "bàn giao"
    assert await first.photo.fetch() == b"\xff\xd8\xff" + b"jpeg-bytes" * 100
    assert first.photo.mime_type == "image/jpeg" and first.photo.size == 1003
    assert again.message_id == first.message_id == "img-1"
    assert zalo_fake.file_downloads == 1  # the redelivery did not download it again
    # "photo" instead of "photo_url": the platform has used both names.
    zalo_fake.push(zalo_fake.image_update(url, key="photo", user_id="u1"))
    await zalo_fake.wait_sent(3)
    assert engine.seen[2].photo is not None


async def test_expired_photo_url_gets_a_second_chance(zalo_fake, polling) -> None:
    engine = Recorder()
    polling(engine)
    zalo_fake.push(zalo_fake.image_update(f"{zalo_fake.base_url}/files/gone.jpg", user_id="u1"))
    await zalo_fake.wait_sent(1)
    assert engine.seen == [] and "gửi lại ảnh" in zalo_fake.texts("u1")[0]


async def test_sticker_and_protected_user_are_unsupported(zalo_fake, polling) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Bot chỉ đọc được chữ và ảnh.")] if inc.unsupported else [])
    polling(engine)
    zalo_fake.push(zalo_fake.sticker_update(user_id="u1"))
    zalo_fake.push(zalo_fake.unsupported_update(user_id="u2"))
    await zalo_fake.wait_sent(2)
    assert all(inc.unsupported for inc in engine.seen) and len(engine.seen) == 2
    assert zalo_fake.texts("u1") == ["Bot chỉ đọc được chữ và ảnh."]


async def test_group_chats_and_bots_are_ignored(zalo_fake) -> None:
    clock = FixedClock(datetime(2021, 11, 17, tzinfo=UTC))
    group = zalo_fake.text_update("danh sách học sinh", chat_id="g1", chat_type="GROUP")
    assert parse_update(group, clock=clock) is None
    bot = zalo_fake.text_update("hi")
    bot["message"]["from"]["is_bot"] = True
    assert parse_update(bot, clock=clock) is None
    assert parse_update({"event_name": "message.text.received"}, clock=clock) is None


async def test_one_chat_is_answered_in_order(zalo_fake, polling) -> None:
    release = asyncio.Event()

    class Slow(Recorder):
        async def handle(self, incoming: Incoming) -> list[Outgoing]:
            if incoming.text == "một":
                await asyncio.wait_for(release.wait(), 5)
            return await super().handle(incoming)

    engine = Slow()
    polling(engine)
    zalo_fake.push(zalo_fake.text_update("một", user_id="u1"))
    zalo_fake.push(zalo_fake.text_update("hai", user_id="u1"))
    zalo_fake.push(zalo_fake.text_update("khác", user_id="u2"))
    await zalo_fake.wait_sent(1)  # u2 is not held up by u1's slow step
    assert zalo_fake.texts() == ["Đã nhận: khác"]
    release.set()
    await zalo_fake.wait_sent(3)
    assert zalo_fake.texts("u1") == ["Đã nhận: một", "Đã nhận: hai"]


async def test_engine_failure_apologises_and_the_next_message_works(zalo_fake, polling) -> None:
    def reply(inc: Incoming) -> list[Outgoing]:
        if inc.text == "boom":
            raise RuntimeError("engine bug")
        return [Outgoing(text="ok")]

    polling(Recorder(reply))
    zalo_fake.push(zalo_fake.text_update("boom", user_id="u1"))
    zalo_fake.push(zalo_fake.text_update("tiếp", user_id="u1"))
    await zalo_fake.wait_sent(2)
    assert "Xin lỗi" in zalo_fake.texts("u1")[0] and zalo_fake.texts("u1")[1] == "ok"


# --- webhook ------------------------------------------------------------------------------------------------


def zalo_settings(fake: FakeZaloApi, tmp_path: Path, **kw) -> Settings:
    return Settings(
        _env_file=None,
        zalo_token=SecretStr(TOKEN),
        zalo_api_url=fake.api_url,
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        media_dir=tmp_path / "media",
        **kw,
    )


async def test_webhook_refuses_a_wrong_or_missing_secret_and_processes_the_right_one(
    zalo_fake, tmp_path, caplog
) -> None:
    engine = Recorder()
    settings = zalo_settings(
        zalo_fake,
        tmp_path,
        zalo_webhook_url="https://bot.example.org/zalo/hook",
        zalo_webhook_secret=SecretStr(WEBHOOK_SECRET),
        zalo_webhook_listen="127.0.0.1:0",
        public_media_url="https://bot.example.org/media",
    )
    service = ZaloService(settings=settings, engine=engine)
    zalo_fake.webhook_target = "http://127.0.0.1:1"  # not where the bot listens: only the test request fails
    zalo_fake.verify_webhooks = False
    await service.start()
    caplog.set_level(logging.INFO, logger="bot.zalo")
    try:
        assert zalo_fake.webhook == {"url": "https://bot.example.org/zalo/hook", "secret_token": WEBHOOK_SECRET}
        hook = f"{service.web.url}/zalo/hook"
        update = zalo_fake.text_update("xin chào", user_id="u9")
        async with httpx.AsyncClient() as client:
            missing = await client.post(hook, json=update)
            wrong = await client.post(hook, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET[:-1] + "X"})
            assert (missing.status_code, wrong.status_code) == (403, 403)
            assert engine.seen == []
            right = await client.post(hook, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET})
            assert right.status_code == 200
            await zalo_fake.wait_sent(1)
            assert zalo_fake.texts("u9") == ["Đã nhận: xin chào"]
            # The chart server rides on the same port; its names cannot leave the media folder.
            url = service.media.publish(PNG)
            served = await client.get(f"{service.web.url}/media/{url.rsplit('/', 1)[1]}")
            assert served.status_code == 200 and served.content == PNG
            assert served.headers["content-type"] == "image/png"
            for bad in ("../x.db", "..%2F..%2Fx.db", "x.db"):
                assert (await client.get(f"{service.web.url}/media/{bad}")).status_code == 404
    finally:
        await service.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and "missing" in refusals[0] and "wrong" in refusals[1]
    assert WEBHOOK_SECRET not in caplog.text and WEBHOOK_SECRET[:-1] not in caplog.text


@pytest.mark.parametrize(
    "url, secret, fragment",
    [
        ("https://bot.example.org/zalo", None, "FIELDBOT_ZALO_WEBHOOK_SECRET"),
        ("https://bot.example.org/zalo", "short", "8–256"),
        ("https://bot.example.org/zalo", "x" * 257, "8–256"),
        ("https://bot.example.org/zalo", "has a space!", "8–256"),
        ("http://bot.example.org/zalo", "long-enough-secret", "https://"),
    ],
)
async def test_webhook_configuration_is_checked_before_any_call(zalo_fake, tmp_path, url, secret, fragment) -> None:
    settings = zalo_settings(
        zalo_fake, tmp_path, zalo_webhook_url=url, zalo_webhook_secret=SecretStr(secret) if secret else None
    )
    with pytest.raises(ZaloConfigError, match=fragment):
        await run_zalo(settings=settings, engine=Recorder(), stop=asyncio.Event())
    assert zalo_fake.calls == []


async def test_run_zalo_polls_and_stops_gracefully(zalo_fake, tmp_path) -> None:
    engine = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(run_zalo(settings=zalo_settings(zalo_fake, tmp_path), engine=engine, stop=stop))
    zalo_fake.push(zalo_fake.text_update("chào bot", user_id="u1"))
    await zalo_fake.wait_sent(1)
    assert zalo_fake.method_calls("getMe") and not zalo_fake.method_calls("deleteWebhook")
    stop.set()
    await asyncio.wait_for(task, 2)  # the long poll in flight is abandoned, not waited out
    assert zalo_fake.texts("u1") == ["Đã nhận: chào bot"]


async def test_rejected_token_stops_start_up_with_a_clear_error(zalo_fake, tmp_path) -> None:
    settings = zalo_settings(zalo_fake, tmp_path).model_copy(update={"zalo_token": SecretStr("1:wrong-token")})
    with pytest.raises(ZaloConfigError, match="FIELDBOT_ZALO_TOKEN"):
        await run_zalo(settings=settings, engine=Recorder(), stop=asyncio.Event())
