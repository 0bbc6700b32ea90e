"""The Zalo adapter against the platform as documented (issue 14): update shapes without ``event_name``,
``message_type``, absent sender names, voice and hidden messages, replies through a 403 "internal server
error", webhook start-up with the platform's verification request, and polling refused while a webhook is set.

The engine is a recorder here; the real one runs in test_zalo_e2e.py and, through ``fieldbot run``, in
test_zalo_run.py.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.zalo import ZaloConfigError, ZaloService, verification_of
from bot.zalo.adapter import HIDDEN_NOTE, SORRY, VOICE_NOTE, ZaloChannel, parse_update
from bot.zalo.api import ZaloApi, ZaloWebhookActive
from bot.zalo.polling import poll_updates
from bot.zalo.webhook import SECRET_HEADER, WebhookGate, build_web_app
from conversations.engine import UNSUPPORTED
from core.clock import FixedClock
from core.messages import Outgoing
from tests.e2e.harness import free_port
from tests.fakes.zalo_api import TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)
from tests.test_zalo_channel import WEBHOOK_SECRET, Recorder, no_sleep, zalo_settings


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2021, 11, 17, 2, tzinfo=UTC))


# --- reading updates ------------------------------------------------------------------------------------------


def test_update_without_event_name_is_read_from_its_fields(zalo_fake, clock) -> None:
    text = parse_update(FakeZaloApi.bare(zalo_fake.text_update("/dangky", user_id="u1")), clock=clock)
    assert text.incoming.command == "dangky" and not text.incoming.unsupported
    url = "https://photo-stal.zdn.vn/a.jpg"
    photo = parse_update(FakeZaloApi.bare(zalo_fake.image_update(url, user_id="u1")), clock=clock)
    assert photo.photo_url == url
    voice = parse_update(FakeZaloApi.bare(zalo_fake.voice_update(user_id="u1")), clock=clock)
    assert voice.incoming.unsupported and voice.note is VOICE_NOTE
    nothing = parse_update({"message": zalo_fake.message(user_id="u1")}, clock=clock)
    assert nothing.incoming.unsupported and nothing.note is HIDDEN_NOTE


def test_message_type_chat_photo_is_a_photo(zalo_fake, clock) -> None:
    url = "https://photo-stal.zdn.vn/b.jpg"
    update = {"message": zalo_fake.message(user_id="u1", message_type="CHAT_PHOTO", url=url, caption="bàn giao")}
    parsed = parse_update(update, clock=clock)
    assert parsed.photo_url == url and parsed.incoming.text == "bàn giao"
    # An unknown event name with a message_type: the type is what is read.
    update["event_name"] = "message.something.new"
    assert parse_update(update, clock=clock).photo_url == url


@pytest.mark.parametrize(
    "sender, name",
    [
        ({"id": "u1", "display_name": " Cô Lan "}, "Cô Lan"),
        ({"id": "u1", "name": "Thầy Minh"}, "Thầy Minh"),
        ({"id": "u1", "first_name": "Nguyen", "last_name": "Van A"}, "Nguyen Van A"),
        ({"id": "u1"}, ""),
        ({"id": "u1", "display_name": None, "is_bot": False}, ""),
    ],
)
def test_sender_name_is_optional(zalo_fake, clock, sender, name) -> None:
    update = FakeZaloApi.bare(zalo_fake.text_update("chào", user_id="u1"), from_=sender)
    assert parse_update(update, clock=clock).incoming.display_name == name


# --- voice and hidden messages --------------------------------------------------------------------------------


async def test_voice_and_hidden_messages_get_the_zalo_note_instead_of_the_generic_one(zalo_fake) -> None:
    engine = Recorder(lambda inc: [Outgoing(text=UNSUPPORTED("vi")), Outgoing(text="Họ và tên của em?")])
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        channel = ZaloChannel(api=api, handle=engine.handle)
        await channel.process(zalo_fake.voice_update(user_id="u1"))
        await channel.process(zalo_fake.unsupported_update(user_id="u2"))
    assert zalo_fake.texts("u1") == [VOICE_NOTE("vi"), "Họ và tên của em?"]
    assert zalo_fake.texts("u2") == [HIDDEN_NOTE("vi"), "Họ và tên của em?"]
    assert all(inc.unsupported for inc in engine.seen)


async def test_the_note_comes_first_when_the_engine_said_something_else(zalo_fake) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Vui lòng gõ số điện thoại của bạn.")])  # an unlinked account
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        await ZaloChannel(api=api, handle=engine.handle).process(zalo_fake.unsupported_update(user_id="u3"))
    assert zalo_fake.texts("u3") == [HIDDEN_NOTE("vi"), "Vui lòng gõ số điện thoại của bạn."]


# --- replies through server faults ----------------------------------------------------------------------------


async def test_a_403_on_a_reply_is_retried_and_nobody_is_told_it_failed(zalo_fake) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Ngày sinh của em?")])
    zalo_fake.fail_next("sendMessage", status=403, count=2, chat_id="u1")
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        channel = ZaloChannel(api=api, handle=engine.handle)
        channel.dispatch(zalo_fake.text_update("Lê Thị Hoa", user_id="u1"))
        await channel.drain(5)
    assert zalo_fake.texts("u1") == ["Ngày sinh của em?"]
    assert len(zalo_fake.method_calls("sendMessage")) == 3


async def test_a_reply_that_never_gets_through_does_not_claim_the_step_failed(zalo_fake, caplog) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Ngày sinh của em?")])
    zalo_fake.fail_next("sendMessage", status=403, count=4, chat_id="u1")  # 1 + 3 retries
    caplog.set_level(logging.WARNING, logger="bot.zalo")
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        channel = ZaloChannel(api=api, handle=engine.handle)
        channel.dispatch(zalo_fake.text_update("Lê Thị Hoa", user_id="u1"))
        await channel.drain(5)
        assert len(engine.seen) == 1  # the step ran once
        # The next message is answered normally: nothing was marked, nothing is owed twice.
        channel.dispatch(zalo_fake.text_update("01/02/2012", user_id="u1"))
        await channel.drain(5)
    assert zalo_fake.texts("u1") == ["Ngày sinh của em?"]
    assert SORRY("vi") not in [c.params.get("text") for c in zalo_fake.method_calls("sendMessage")]
    assert "the step itself was saved" in caplog.text


async def test_send_chat_action_without_result_is_fine(zalo_fake) -> None:
    engine = Recorder(lambda inc: [Outgoing(text="Đang tổng hợp...")])
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        await ZaloChannel(api=api, handle=engine.handle).process(zalo_fake.text_update("/tonghop", user_id="u1"))
    assert zalo_fake.method_calls("sendChatAction") and zalo_fake.texts("u1") == ["Đang tổng hợp..."]


# --- webhook start-up -----------------------------------------------------------------------------------------


def webhook_service(fake: FakeZaloApi, tmp_path, engine=None) -> ZaloService:
    port = free_port()
    fake.webhook_target = f"http://127.0.0.1:{port}"  # the reverse proxy in front of the bot
    settings = zalo_settings(
        fake,
        tmp_path,
        zalo_webhook_url="https://bot.example.org/zalo/hook",
        zalo_webhook_secret=SecretStr(WEBHOOK_SECRET),
        zalo_webhook_listen=f"127.0.0.1:{port}",
    )
    return ZaloService(settings=settings, engine=engine or Recorder())


async def test_webhook_listens_first_and_answers_the_verification_request(zalo_fake, tmp_path) -> None:
    engine = Recorder()
    service = webhook_service(zalo_fake, tmp_path, engine)
    try:
        await service.start()
        assert zalo_fake.verifications == [(200, "webhook.ok")]
        assert engine.seen == []  # the test request is no message
        # Updates then come as flat bodies with the secret.
        assert await zalo_fake.deliver_webhook(zalo_fake.bare(zalo_fake.text_update("chào", user_id="u9"))) == 200
        await zalo_fake.wait_sent(1)
        assert zalo_fake.texts("u9") == ["Đã nhận: chào"]
    finally:
        await service.close()


@pytest.mark.parametrize("body", [None, {}, {"event_name": "webhook.verify"}, {"ok": True, "result": {}}])
async def test_verification_request_bodies_are_all_acknowledged(zalo_fake, tmp_path, body) -> None:
    zalo_fake.verification_body = body
    service = webhook_service(zalo_fake, tmp_path)
    try:
        await service.start()
    finally:
        await service.close()
    assert zalo_fake.verifications == [(200, "webhook.ok")]


async def test_verification_request_without_the_secret_is_answered_only_during_set_webhook(zalo_fake, tmp_path) -> None:
    zalo_fake.verification_secret = False  # undocumented either way: both must work
    service = webhook_service(zalo_fake, tmp_path)
    try:
        await service.start()
        assert zalo_fake.verifications == [(200, "webhook.ok")]
        async with httpx.AsyncClient() as client:  # afterwards the same request is refused
            late = await client.post(f"{zalo_fake.webhook_target}/zalo/hook", json={})
        assert late.status_code == 403
    finally:
        await service.close()


async def test_a_secretless_request_with_a_message_is_never_processed_even_while_verifying() -> None:
    seen: list = []
    gate = WebhookGate()
    gate.verifying = True
    app = build_web_app(on_update=seen.append, secret=WEBHOOK_SECRET, path="/hook", gate=gate)
    async with TestClient(TestServer(app)) as client:
        sneaky = await client.post("/hook", json={"message": {"from": {"id": "x"}, "text": "hi"}})
        probe = await client.post("/hook", data=b"not json")
        right = await client.post("/hook", data=b"", headers={SECRET_HEADER: WEBHOOK_SECRET})
    assert (sneaky.status, probe.status, right.status) == (403, 200, 200) and seen == []


async def test_failed_verification_stops_start_up_with_one_line(zalo_fake, tmp_path) -> None:
    service = webhook_service(zalo_fake, tmp_path)
    zalo_fake.webhook_target = f"http://127.0.0.1:{free_port()}"  # the proxy points somewhere else
    try:
        with pytest.raises(ZaloConfigError) as info:
            await service.start()
    finally:
        await service.close()
    message = str(info.value)
    assert "webhook.err.unreachable" in message and "FIELDBOT_ZALO_WEBHOOK_LISTEN" in message
    assert "\n" not in message and WEBHOOK_SECRET not in message and TOKEN not in message


def test_verification_outcome_shapes() -> None:
    assert verification_of({"url": "u", "verification": "webhook.ok"}) == "webhook.ok"
    assert verification_of({"verification": {"status": "webhook.err.unreachable"}}) == "webhook.err.unreachable"
    assert verification_of({"url": "u"}) is None and verification_of(True) is None


async def test_a_platform_that_reports_no_verification_is_accepted(zalo_fake, tmp_path) -> None:
    zalo_fake.verify_webhooks = False
    service = webhook_service(zalo_fake, tmp_path)
    try:
        await service.start()
    finally:
        await service.close()
    assert zalo_fake.webhook["url"] == "https://bot.example.org/zalo/hook"


# --- polling while a webhook is set ---------------------------------------------------------------------------


async def test_polling_start_up_refuses_while_a_webhook_is_set_and_leaves_it_alone(zalo_fake, tmp_path) -> None:
    zalo_fake.webhook = {"url": "https://old.example.org/zalo", "secret_token": "old-secret"}
    service = ZaloService(settings=zalo_settings(zalo_fake, tmp_path), engine=Recorder())
    try:
        with pytest.raises(ZaloConfigError) as info:
            await service.start()
    finally:
        await service.close()
    message = str(info.value)
    assert "https://old.example.org/zalo" in message and "deleteWebhook" in message and "\n" not in message
    assert TOKEN not in message and zalo_fake.webhook["url"] == "https://old.example.org/zalo"
    assert not zalo_fake.method_calls("deleteWebhook") and not zalo_fake.method_calls("getUpdates")


async def test_a_webhook_set_while_polling_ends_polling_with_one_line(zalo_fake, tmp_path) -> None:
    service = ZaloService(settings=zalo_settings(zalo_fake, tmp_path), engine=Recorder(), poll_timeout=1)
    zalo_fake.max_poll_wait = 0.05
    try:
        await service.start()
        zalo_fake.webhook = {"url": "https://other.example.org/zalo", "secret_token": "other-secret"}
        with pytest.raises(ZaloConfigError, match="deleteWebhook"):
            await asyncio.wait_for(service.run(asyncio.Event()), 5)
    finally:
        await service.close()
    assert len(zalo_fake.method_calls("getUpdates")) == 1  # refused once, not retried forever


async def test_poller_hands_webhook_active_up(zalo_fake) -> None:
    zalo_fake.webhook = {"url": "https://x.example.org/z", "secret_token": "s3cret-s3cret"}
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:
        with pytest.raises(ZaloWebhookActive):
            await poll_updates(api=api, on_update=lambda u: None, stop=asyncio.Event(), timeout=1, sleep=no_sleep)


async def test_poller_backs_off_on_403_and_429_and_keeps_polling(zalo_fake) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    got: list = []
    stop = asyncio.Event()
    zalo_fake.fail_next("getUpdates", status=403)
    zalo_fake.fail_next("getUpdates", status=429)
    zalo_fake.push(zalo_fake.text_update("còn đây", user_id="u1"))
    async with ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep) as api:

        def on_update(update) -> None:
            got.append(update)
            stop.set()

        await asyncio.wait_for(poll_updates(api=api, on_update=on_update, stop=stop, timeout=1, sleep=sleep), 5)
    assert pauses == [1.0, 2.0] and got[0]["message"]["text"] == "còn đây"
