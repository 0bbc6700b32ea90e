"""ZaloSender: how a reminder's delivery failure on Zalo is read by the outbox. The platform documents no
"blocked" answer (403 is its internal server error), so no single answer is ``Unreachable``."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.settings import Settings
from bot.zalo.adapter import OptionMemory
from bot.zalo.api import ZaloApi
from bot.zalo.sender import ZaloSender
from core.messages import Option, Outgoing
from core.ports import ChannelSender, DeliveryError, RetryLater, Unreachable
from tests.fakes.zalo_api import TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def sender(zalo_fake: FakeZaloApi):
    s = ZaloSender(
        api=ZaloApi(token=TOKEN, api_url=zalo_fake.api_url, sleep=no_sleep, max_retries=2), memory=OptionMemory()
    )
    yield s
    await s.aclose()


async def test_reminder_is_delivered_as_plain_text(zalo_fake: FakeZaloApi, sender: ZaloSender) -> None:
    assert isinstance(sender, ChannelSender) and sender.channel == "zalo"
    await sender.send(
        "p1",
        Outgoing(text="<b>Nhắc việc</b>: còn 3 ngày để nộp báo cáo nhu cầu", options=[Option("r:open", "Mở báo cáo")]),
    )
    assert zalo_fake.texts("p1")[0].startswith("Nhắc việc: còn 3 ngày")
    assert sender.memory.choice_for("p1", "1") == "r:open"  # shared memory: "1" answers the reminder


@pytest.mark.parametrize(
    "status, retry_after, expected",
    [
        (429, 120, RetryLater),  # a Retry-After longer than the client waits by itself: the outbox waits
        (429, None, RetryLater),  # quota exceeded, no hint: still later
        (500, None, RetryLater),
        (503, None, RetryLater),
        (401, None, RetryLater),  # our token, not the person: the reminder is still owed
        (403, None, RetryLater),  # "Internal server error" on this platform, not "blocked"
        (404, None, RetryLater),  # "Invalid access": not evidence about the person on its own
    ],
)
async def test_failures_map_to_the_delivery_contract(zalo_fake, sender, status, retry_after, expected) -> None:
    zalo_fake.fail_next("sendMessage", status=status, retry_after=retry_after, count=5)
    with pytest.raises(expected) as info:
        await sender.send("p1", Outgoing(text="Nhắc việc"))
    if retry_after is not None:
        assert info.value.retry_after == retry_after
    assert not isinstance(info.value, Unreachable) and TOKEN not in str(info.value)


async def test_a_bad_request_is_not_the_persons_fault(zalo_fake: FakeZaloApi, sender: ZaloSender) -> None:
    zalo_fake.fail_next("sendMessage", status=400)  # "Bad Request": nothing about the chat
    with pytest.raises(DeliveryError) as info:
        await sender.send("p1", Outgoing(text="Nhắc việc"))
    assert not isinstance(info.value, (RetryLater, Unreachable))


async def test_a_403_within_the_clients_retries_still_delivers(zalo_fake: FakeZaloApi, sender: ZaloSender) -> None:
    zalo_fake.fail_next("sendMessage", status=403, count=2, chat_id="p1")
    await sender.send("p1", Outgoing(text="Nhắc việc"))
    assert zalo_fake.texts("p1") == ["Nhắc việc"]


async def test_a_bad_chat_id_is_a_bad_request_not_a_blocked_person(zalo_fake, sender) -> None:
    with pytest.raises(DeliveryError) as info:
        await sender.send("", Outgoing(text="Nhắc việc"))  # the platform: 400 "chat_id is required"
    assert not isinstance(info.value, (RetryLater, Unreachable))


async def test_from_settings(zalo_fake: FakeZaloApi, tmp_path) -> None:
    settings = Settings(_env_file=None, zalo_token=SecretStr(TOKEN), zalo_api_url=zalo_fake.api_url, media_dir=tmp_path)
    sender = ZaloSender.from_settings(settings)
    try:
        await sender.send("p2", Outgoing(text="Bản tin sáng"))
    finally:
        await sender.aclose()
    assert zalo_fake.texts("p2") == ["Bản tin sáng"]
