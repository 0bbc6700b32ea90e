"""The Zalo Bot API client against the fake platform on loopback: envelopes, errors, retries, no token leaks."""

from __future__ import annotations

import logging

import httpx
import pytest

from bot.zalo.api import ZaloApi, ZaloRequestError, ZaloTransientError, ZaloUnauthorized, ZaloWebhookActive
from tests.fakes.zalo_api import BOT_INFO, TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)


class Sleeps:
    """An injected sleep: records the pauses the client asked for and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_api(fake: FakeZaloApi, **kw) -> tuple[ZaloApi, Sleeps]:
    sleeps = Sleeps()
    return ZaloApi(token=kw.pop("token", TOKEN), api_url=fake.api_url, sleep=sleeps, **kw), sleeps


async def test_get_me_and_send_message(zalo_fake: FakeZaloApi) -> None:
    api, _ = make_api(zalo_fake)
    async with api:
        assert await api.get_me() == BOT_INFO
        result = await api.send_message(chat_id="c1", text="Xin chào cô Lan")
    assert result["message_id"] and zalo_fake.texts("c1") == ["Xin chào cô Lan"]


async def test_error_envelope_becomes_exception_without_retry(zalo_fake: FakeZaloApi) -> None:
    api, sleeps = make_api(zalo_fake)
    async with api:
        with pytest.raises(ZaloRequestError) as info:
            await api.send_message(chat_id="c1", text="x" * 2001)
    assert info.value.error_code == 400 and "too long" in info.value.description
    assert sleeps.calls == [] and len(zalo_fake.method_calls("sendMessage")) == 1


async def test_wrong_token_is_unauthorized_and_never_shown(zalo_fake: FakeZaloApi, caplog) -> None:
    bad = "999999:wrong-token-SECRET"
    api, _ = make_api(zalo_fake, token=bad)
    caplog.set_level(logging.DEBUG, logger="bot.zalo")
    async with api:
        with pytest.raises(ZaloUnauthorized) as info:
            await api.get_me()
    assert bad not in str(info.value) and api.masked_url("getMe").endswith("/bot***/getMe")


async def test_429_backs_off_without_any_retry_after(zalo_fake: FakeZaloApi, caplog) -> None:
    """Quota exceeded, as documented: no ``parameters.retry_after`` and no header. The client backs off on its
    own, longer than after a server fault."""
    zalo_fake.fail_next("sendMessage", status=429, count=2)
    api, sleeps = make_api(zalo_fake, backoff=0.5, rate_backoff=2.0)
    caplog.set_level(logging.DEBUG, logger="bot.zalo")
    async with api:
        await api.send_message(chat_id="c1", text="một lần thôi")
    assert sleeps.calls == [2.0, 4.0]
    assert zalo_fake.texts("c1") == ["một lần thôi"] and len(zalo_fake.method_calls("sendMessage")) == 3
    assert "retry 1/3" in caplog.text and TOKEN not in caplog.text and "/bot***/sendMessage" in caplog.text


async def test_a_telegram_style_retry_after_in_the_body_is_not_relied_on() -> None:
    """``parameters.retry_after`` is Telegram's convention, not Zalo's: ignored; an HTTP header is honoured."""
    answers = [
        httpx.Response(
            429, json={"ok": False, "error_code": 429, "description": "x", "parameters": {"retry_after": 600}}
        ),
        httpx.Response(429, json={"ok": False, "error_code": 429, "description": "x"}, headers={"Retry-After": "5"}),
        httpx.Response(200, json={"ok": True, "result": {"message_id": "m", "date": 1}}),
    ]
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answers.pop(0)))
    sleeps = Sleeps()
    api = ZaloApi(token=TOKEN, api_url="https://zalo.invalid", client=client, sleep=sleeps, rate_backoff=2.0)
    try:
        await api.send_message(chat_id="c1", text="x")
    finally:
        await client.aclose()
    assert sleeps.calls == [2.0, 5.0] and answers == []


async def test_403_is_the_platforms_internal_error_and_is_retried(zalo_fake: FakeZaloApi) -> None:
    zalo_fake.fail_next("sendMessage", status=403, count=2)
    api, sleeps = make_api(zalo_fake, backoff=0.5)
    async with api:
        await api.send_message(chat_id="c1", text="tới nơi")
        assert sleeps.calls == [0.5, 1.0] and zalo_fake.texts("c1") == ["tới nơi"]
        zalo_fake.fail_next("sendMessage", status=403, count=10)
        with pytest.raises(ZaloTransientError) as info:
            await api.send_message(chat_id="c1", text="không tới")
    assert info.value.error_code == 403 and "Internal server error" in info.value.description


async def test_unknown_method_is_a_bad_request(zalo_fake: FakeZaloApi) -> None:
    api, sleeps = make_api(zalo_fake)
    async with api:
        with pytest.raises(ZaloRequestError) as info:
            await api.call("sendVideo", {"chat_id": "c1"})
    assert info.value.error_code == 400 and sleeps.calls == []


async def test_500_is_retried_with_exponential_backoff_then_given_up(zalo_fake: FakeZaloApi) -> None:
    zalo_fake.fail_next("sendMessage", status=500, count=2)
    api, sleeps = make_api(zalo_fake, backoff=0.5)
    async with api:
        await api.send_message(chat_id="c1", text="sau hai lỗi")
        assert sleeps.calls == [0.5, 1.0]
        zalo_fake.fail_next("sendMessage", status=503, count=10)
        with pytest.raises(ZaloTransientError) as info:
            await api.send_message(chat_id="c1", text="không tới")
    assert info.value.error_code == 503 and TOKEN not in str(info.value)
    assert zalo_fake.texts("c1") == ["sau hai lỗi"]


async def test_long_rate_limit_header_is_left_to_the_caller(zalo_fake: FakeZaloApi) -> None:
    zalo_fake.fail_next("sendMessage", status=429, retry_after=120)
    api, sleeps = make_api(zalo_fake, max_retry_after=30)
    async with api:
        with pytest.raises(ZaloTransientError) as info:
            await api.send_message(chat_id="c1", text="x")
    assert info.value.retry_after == 120 and sleeps.calls == []


async def test_timeout_is_retried(zalo_fake: FakeZaloApi) -> None:
    zalo_fake.delay("getMe", 0.5, count=1)
    client = httpx.AsyncClient(timeout=httpx.Timeout(0.1))
    api, sleeps = make_api(zalo_fake, client=client)
    try:
        assert await api.get_me() == BOT_INFO
    finally:
        await client.aclose()
    assert len(sleeps.calls) == 1 and len(zalo_fake.method_calls("getMe")) == 2


async def test_unreachable_platform_is_transient(zalo_fake: FakeZaloApi) -> None:
    url = zalo_fake.api_url
    await zalo_fake.close()  # nothing listens there any more
    api = ZaloApi(token=TOKEN, api_url=url, sleep=Sleeps(), max_retries=1)
    async with api:
        with pytest.raises(ZaloTransientError) as info:
            await api.get_me()
    assert "network error" in info.value.description and TOKEN not in str(info.value)


async def test_get_updates_one_at_a_time_and_empty_poll(zalo_fake: FakeZaloApi) -> None:
    first = zalo_fake.push(zalo_fake.text_update("một"))
    zalo_fake.push(zalo_fake.text_update("hai"))
    api, _ = make_api(zalo_fake)
    async with api:
        assert await api.get_updates(timeout=1) == [first]
        assert [u["message"]["text"] for u in await api.get_updates(timeout=1)] == ["hai"]
        zalo_fake.max_poll_wait = 0.05
        assert await api.get_updates(timeout=30) == []  # the long poll ended with 408: nothing to do


async def test_webhook_methods(zalo_fake: FakeZaloApi) -> None:
    api, _ = make_api(zalo_fake)
    async with api:
        result = await api.set_webhook(url="https://bot.example.org/zalo", secret_token="s3cret-s3cret")
        assert result["verification"] == "webhook.err.unreachable"  # nothing listens at that address
        assert (await api.get_webhook_info())["url"] == "https://bot.example.org/zalo"
        assert await api.webhook_url() == "https://bot.example.org/zalo"
        with pytest.raises(ZaloWebhookActive) as info:
            await api.get_updates(timeout=1)
        assert info.value.url == "https://bot.example.org/zalo"
        await api.delete_webhook()
        assert (await api.get_webhook_info())["url"] == "" and await api.webhook_url() == ""
        assert await api.send_chat_action(chat_id="c1") is None  # {"ok": true} without a result is success
    assert zalo_fake.method_calls("sendChatAction")[0].params == {"chat_id": "c1", "action": "typing"}


async def test_other_get_updates_refusals_stay_request_errors(zalo_fake: FakeZaloApi) -> None:
    zalo_fake.fail_next("getUpdates", status=400)
    api, _ = make_api(zalo_fake)
    async with api:
        with pytest.raises(ZaloRequestError) as info:
            await api.get_updates(timeout=1)
    assert not isinstance(info.value, ZaloWebhookActive) and info.value.error_code == 400
