"""kill -9 of a sweeping `fieldbot sweep` process between its finding and its delivery, on SQLite and PostgreSQL.

The sweep records what is due in the outbox, then delivers. Here one principal's Telegram message is held
in flight (the fake Bot API does not answer) while the other messages and e-mails go out, and the process
is killed. A restart may not sweep while the dead process's lease lasts (the operator is told why); after it,
the restart delivers only what had not gone out: every person ends up with exactly one copy.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from bot.settings import DEFAULT_PROGRAMME
from core.clock import LOCAL_TZ, SystemClock
from tests.conftest import sqlite_url
from tests.e2e.harness import EXAMPLE_ROSTER, FIELDBOT, BotProcess, bot_env, link
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.slow

NOW = "2021-11-17T08:00:00+07:00"  # three days before the needs-report deadline: every principal is reminded
LINKED = {
    2001: ("Nguyễn Thị Lan", "0901000001"),
    2002: ("Đỗ Thị Hồng", "0902111001"),
    2003: ("Phạm Quốc Bảo", "0904333001"),
    3001: ("Lê Minh Tiến", "0913860438"),
}
HELD = 2001  # Lan's reminder is in flight when the process dies
LEASE = 8  # seconds (FIELDBOT_SWEEP_LEASE_SECONDS)
EMAILED = ("anh.hn@example.edu.vn", "yen.ttk@example.edu.vn")  # principals with no chat: reminded by e-mail


def delivered(tg: FakeTelegram, since: dict[int, int]) -> Counter:
    """Text messages each linked person received since ``since`` (their inbox sizes then); the digest's chart
    is a picture after its text, not counted."""
    return Counter(
        {chat: sum(m.method == "sendMessage" for m in tg.messages_to(chat)[since[chat] :]) for chat in LINKED}
    )


async def linked_bot(tg: FakeTelegram, env: dict[str, str], cwd) -> BotProcess:
    """The example roster imported and the ``LINKED`` people linked on Telegram; the bot stopped again."""
    bot = BotProcess(env, cwd=cwd)
    bot.cli("roster", "import", str(EXAMPLE_ROSTER))
    await bot.start("--no-scheduler")
    for chat, (name, phone) in LINKED.items():
        await link(tg, chat, name, phone)
    await bot.stop()
    return bot


async def test_kill_9_between_finding_and_delivery_sends_nothing_twice(tg, mailbox, db_url, tmp_path) -> None:
    env = bot_env(tmp_path, tg, smtp_port=mailbox.port, db_url=db_url, FIELDBOT_SWEEP_LEASE_SECONDS=str(LEASE))
    bot = await linked_bot(tg, env, tmp_path)
    before = {chat: len(tg.messages_to(chat)) for chat in LINKED}
    db = create_engine(db_url)

    def outbox() -> Counter:
        with db.connect() as conn:
            return Counter(dict(conn.execute(text("SELECT status, count(*) FROM notification GROUP BY status")).all()))

    def pending_except_held() -> int:
        with db.connect() as conn:
            return conn.execute(
                text(
                    "SELECT count(*) FROM notification n LEFT JOIN chat_identity c ON c.staff_id = n.recipient_id "
                    "WHERE n.status = 'pending' AND (c.chat_id IS NULL OR c.chat_id <> :held)"
                ),
                {"held": str(HELD)},
            ).scalar_one()

    sweep = None
    try:
        tg.fail_next("sendMessage", status=500, delay=120, chat_id=HELD)
        started = time.monotonic()
        sweep = await asyncio.create_subprocess_exec(
            FIELDBOT,
            "sweep",
            "--now",
            NOW,
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await tg.wait_for(
            lambda: any(c.params.get("chat_id") in (HELD, str(HELD)) for c in tg.calls_of("sendMessage")),
            60,
            what="the held reminder",
        )
        await tg.wait_for(
            lambda: all(delivered(tg, before)[c] == 1 for c in LINKED if c != HELD), 60, what="the other messages"
        )
        await tg.wait_for(lambda: all(len(mailbox.to(a)) == 1 for a in EMAILED), 60, what="the e-mails")
        for _ in range(100):  # give the others' deliveries time to be recorded (a design that records late
            if pending_except_held() == 0:  # or in one batch would send them twice below)
                break
            await asyncio.sleep(0.05)
        sweep.send_signal(signal.SIGKILL)
        assert await sweep.wait() == -signal.SIGKILL
        assert delivered(tg, before)[HELD] == 0
        found = outbox()
        assert found["pending"] >= 1 and found["sent"] >= len(LINKED) - 1 + len(EMAILED)

        # At once: the dead process's lease still stands, and the operator is told so (nothing is sent).
        busy = await bot.acli("sweep", "--now", NOW, check=False)
        if time.monotonic() - started < LEASE - 1:  # a slow machine may get here after the lease ran out
            assert busy.returncode == 1 and "tiến trình khác" in busy.stdout
        for _ in range(60):  # the lease runs out: the restart delivers
            again = await bot.acli("sweep", "--now", NOW, check=False)
            if again.returncode == 0:
                break
            await asyncio.sleep(0.5)
        assert again.returncode == 0, again.stdout + again.stderr
        await tg.wait_for(lambda: delivered(tg, before)[HELD] == 1, 30, what="the held reminder, once")
        assert "0 mới" in again.stdout  # found again, but recorded before the kill: nothing new

        # And one more sweep at the same moment: everything is already sent.
        await bot.acli("sweep", "--now", NOW)
        await asyncio.sleep(0.5)
        assert delivered(tg, before) == Counter({chat: 1 for chat in LINKED})
        assert [len(mailbox.to(a)) for a in EMAILED] == [1, 1]
        assert "chốt báo cáo nhu cầu" in tg.messages_to(HELD)[-1].text
        final = outbox()
        assert final["pending"] == 0 and final["failed"] == 0 and final["sent"] == sum(found.values())
    finally:
        if sweep is not None and sweep.returncode is None:
            sweep.kill()
            await sweep.wait()
        db.dispose()


async def test_kill_9_of_the_running_bot_mid_delivery_sends_nothing_twice(tg, mailbox, tmp_path) -> None:
    """The same through `fieldbot run`'s own scheduler, on today's date: its catch-up sweep at start records the
    reminders, one is in flight when the bot is killed; the restarted bot takes over once the lease runs out."""
    today = SystemClock().now().astimezone(LOCAL_TZ).date()
    programme = tmp_path / "programme.toml"
    programme.write_text(
        DEFAULT_PROGRAMME.read_text(encoding="utf-8")
        .replace('needs_report = "20/11/2021"', f'needs_report = "{today + timedelta(days=1):%d/%m/%Y}"')
        .replace('quiet_hours = "21:00-06:30"', 'quiet_hours = "00:00-00:00"')
        # Reminders go out at the morning hour of their day: at midnight, so the day-before reminder is due
        # whatever time of day the test runs (at 00:30 in Thủ Dầu Một a 07:00 morning is still to come).
        .replace('morning = "07:00"', 'morning = "00:00"'),
        encoding="utf-8",
    )
    env = bot_env(
        tmp_path, tg, smtp_port=mailbox.port, FIELDBOT_SWEEP_LEASE_SECONDS=str(LEASE), FIELDBOT_PROGRAMME=str(programme)
    )
    bot = await linked_bot(tg, env, tmp_path)
    before = {chat: len(tg.messages_to(chat)) for chat in LINKED}

    tg.fail_next("sendMessage", status=500, delay=120, chat_id=HELD)
    await bot.start()  # with the scheduler: it sweeps at once
    linking = len(tg.calls_of("sendMessage"))  # the replies while linking were to HELD's chat too
    await tg.wait_for(
        lambda: any(c.params.get("chat_id") in (HELD, str(HELD)) for c in tg.calls_of("sendMessage")[linking:]),
        60,
        what="the held reminder",
    )
    await tg.wait_for(lambda: all(len(mailbox.to(a)) == 1 for a in EMAILED), 60, what="the e-mails")
    await asyncio.sleep(1)  # the others' deliveries are recorded at once
    await bot.kill9()
    assert delivered(tg, before)[HELD] == 0
    sent_before_kill = {chat: [m.text for m in tg.messages_to(chat)[before[chat] :]] for chat in LINKED}

    await bot.start()  # idle until the dead bot's lease runs out, then its delivery job sends what is left
    await tg.wait_for(lambda: delivered(tg, before)[HELD] >= 1, 90, what="the held reminder after the restart")
    await asyncio.sleep(2)
    await bot.stop()
    for chat in LINKED:
        texts = [m.text for m in tg.messages_to(chat)[before[chat] :]]
        assert len(texts) == len(set(texts)), f"chat {chat} got a message twice: {texts}"
        if chat != HELD:
            assert texts == sent_before_kill[chat]  # nothing new for those already served
    assert "chốt báo cáo nhu cầu" in tg.messages_to(HELD)[-1].text
    assert [len(mailbox.to(a)) for a in EMAILED] == [1, 1]
    db = create_engine(sqlite_url(tmp_path))
    try:
        with db.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM notification GROUP BY status")).all())
    finally:
        db.dispose()
    assert statuses.get("pending", 0) == 0 and statuses.get("failed", 0) == 0 and statuses["sent"] >= 1
