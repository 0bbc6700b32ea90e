"""TelegramSender against the fake Bot API server: rendering, and how each failure is read."""

from __future__ import annotations

from datetime import date

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.telegram_sender import TelegramSender
from core.clock import FixedClock
from core.messages import Outgoing
from core.ports import DeliveryError, RetryLater, Unreachable
from core.vocabulary import NotificationStatus
from scheduler.delivery import Deliverer
from scheduler.ratelimit import RateLimiter
from scheduler.sweep import sweep
from tests.factories import add_handover, link, local, rows, submit_report
from tests.fakes.recording import RecordingSender
from tests.fakes.telegram_api import FakeTelegram

PRINCIPAL = 7001


@pytest.fixture
async def fake():
    async with FakeTelegram() as tg:
        tg.user(PRINCIPAL, "Lan")
        yield tg


@pytest.fixture
async def bot(fake):
    b = Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=HTTPXRequest(read_timeout=2, connect_timeout=2),
    )
    async with b:
        yield b


def instant_limiter(at: float = 100.0) -> RateLimiter:
    """The real limiter on a clock that jumps instead of sleeping (pages to one chat are 1 s apart)."""
    now = [at]

    async def jump(seconds: float) -> None:
        now[0] += seconds

    return RateLimiter(monotonic=lambda: now[0], sleep=jump)


async def test_html_text_split_into_pages_under_the_limit(fake, bot):
    sender = TelegramSender(bot, limiter=instant_limiter())
    lines = [f"• <b>Học sinh {i}</b> (lớp 6A{i % 9}), bàn giao 17/11/2021, hạn hết ngày 18/11/2021" for i in range(120)]
    await sender.send(str(PRINCIPAL), Outgoing(text="\n".join(lines)))
    pages = fake.messages_to(PRINCIPAL)
    assert len(pages) >= 2 and all(len(p.raw_text) <= 4096 for p in pages)
    assert {p.parse_mode for p in pages} == {"HTML"}
    assert "Học sinh 0" in pages[0].text and "Học sinh 119" in pages[-1].text  # tags parsed, nothing lost
    assert sender.limiter.waited == pytest.approx(len(pages) - 1)  # one page per second to one chat


async def test_retry_after_pauses_the_whole_limiter(fake, bot):
    limiter = instant_limiter(at=100.0)
    sender = TelegramSender(bot, limiter=limiter)
    fake.fail_next("sendMessage", status=429, retry_after=17)
    with pytest.raises(RetryLater) as err:
        await sender.send(str(PRINCIPAL), Outgoing(text="Nhắc việc"))
    assert err.value.retry_after == 17
    assert limiter.paused_until == pytest.approx(117.0)


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_are_retry_later(fake, bot, status):
    fake.fail_next("sendMessage", status=status)
    with pytest.raises(RetryLater) as err:
        await TelegramSender(bot, limiter=instant_limiter()).send(str(PRINCIPAL), Outgoing(text="x"))
    assert err.value.retry_after is None


async def test_timeout_is_retry_later(fake):
    fake.fail_next("sendMessage", status=200, delay=1.0)  # slower than the client waits
    async with Bot(fake.token, base_url=fake.base_url, request=HTTPXRequest(read_timeout=0.2)) as slow_bot:
        with pytest.raises(RetryLater):
            await TelegramSender(slow_bot, limiter=instant_limiter()).send(str(PRINCIPAL), Outgoing(text="x"))


async def test_blocked_and_unknown_chats_are_unreachable(fake, bot):
    sender = TelegramSender(bot, limiter=instant_limiter())
    fake.block(PRINCIPAL)
    with pytest.raises(Unreachable, match="blocked"):
        await sender.send(str(PRINCIPAL), Outgoing(text="x"))
    with pytest.raises(Unreachable, match="(?i)chat not found"):
        await sender.send("999999", Outgoing(text="x"))


async def test_bad_markup_is_the_messages_fault_not_the_persons(fake, bot):
    with pytest.raises(DeliveryError) as err:
        await TelegramSender(bot, limiter=instant_limiter()).send(str(PRINCIPAL), Outgoing(text="<b>unclosed"))
    assert not isinstance(err.value, (Unreachable, RetryLater))


async def test_forbidden_in_the_outbox_falls_back_to_zalo(fake, bot, sqlite_engine, sqlite_world, programme):
    """The whole path: sweep, outbox, TelegramSender over HTTP; the blocked Telegram chat is marked and the
    principal gets the reminder on Zalo instead."""
    w = sqlite_world
    add_handover(
        sqlite_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    submit_report(sqlite_engine, school_id=w.school_a, at=local(2021, 11, 16))
    link(
        sqlite_engine, staff_id=w.principal_a, channel="telegram", chat_id=str(PRINCIPAL), linked_at=local(2021, 11, 5)
    )
    zalo_chat = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", linked_at=local(2021, 11, 1))
    fake.block(PRINCIPAL)
    zalo = RecordingSender("zalo")
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await Deliverer(
        db=sqlite_engine,
        programme=programme,
        clock=clock,
        senders={"telegram": TelegramSender(bot, limiter=instant_limiter()), "zalo": zalo},
    ).deliver_due()
    [row] = rows(sqlite_engine, rule="csdl", recipient_id=w.principal_a)
    assert (row.status, row.channels_done) == (NotificationStatus.SENT, "zalo")
    assert "Forbidden: bot was blocked by the user" in row.last_error
    assert len(zalo.texts(zalo_chat)) == 1 and fake.messages_to(PRINCIPAL) == []

    # Unblocked later: the blocked identity is no longer tried (the person re-links to use it again).
    fake.unblock(PRINCIPAL)
    clock.set(local(2021, 11, 19, 7))
    add_handover(
        sqlite_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 9),
    )
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await Deliverer(
        db=sqlite_engine,
        programme=programme,
        clock=clock,
        senders={"telegram": TelegramSender(bot, limiter=instant_limiter()), "zalo": zalo},
    ).deliver_due()
    assert len(zalo.texts(zalo_chat)) == 2 and fake.messages_to(PRINCIPAL) == []
