"""kill -9 of `fieldbot run` after the principal's approval has committed and before the teacher's message
has gone out: the message is an outbox row written with the approval, so the restarted bot sends it, once.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.harness import EXAMPLE_ROSTER, BotProcess, bot_env, link
from tests.e2e.test_e2e_telegram import PRINCIPAL, TEACHER, register

pytestmark = pytest.mark.slow

LEASE = 6  # seconds: how long the restarted bot waits before it may deliver what the dead one held


def approvals(tg, chat: int) -> list[str]:
    return [m.text for m in tg.messages_to(chat) if m.method == "sendMessage" and "đã duyệt" in (m.text or "")]


async def test_kill_9_between_the_approval_and_the_teachers_message(tg, mailbox, tmp_path) -> None:
    env = bot_env(tmp_path, tg, smtp_port=mailbox.port, FIELDBOT_SWEEP_LEASE_SECONDS=str(LEASE))
    bot = BotProcess(env, cwd=tmp_path)
    bot.cli("roster", "import", str(EXAMPLE_ROSTER))
    await bot.start()
    try:
        teacher = await link(tg, 1001, "Trần Văn Minh", TEACHER)
        principal = await link(tg, 2001, "Nguyễn Thị Lan", PRINCIPAL)
        await register(teacher, "Lê Thị Hoa", "0912345678")
        await principal.expect("Lê Thị Hoa")  # "a new registration to review", through the outbox too
        # The teacher's next message is held in flight (no answer for a minute, then a 502): it is the
        # approval, sent by the deliverer the moment the principal's step commits.
        tg.fail_next("sendMessage", status=502, delay=60, chat_id=1001)
        held_before = len(tg.calls_of("sendMessage"))
        await principal.say("/duyet", expect="Đăng ký chờ duyệt (1)")
        await principal.tap("Đăng ký chờ duyệt", expect="Lê Thị Hoa")
        await principal.tap("Duyệt", expect="Đã duyệt em Lê Thị Hoa")
        await tg.wait_for(
            lambda: any(
                c.params.get("chat_id") == 1001 and "đã duyệt" in str(c.params.get("text"))
                for c in tg.calls_of("sendMessage")[held_before:]
            ),
            timeout=30,
            what="the approval to be in flight",
        )
        await bot.kill9()
        assert approvals(tg, 1001) == []  # committed, not delivered
        await bot.start()
        await tg.wait_for(lambda: len(approvals(tg, 1001)) >= 1, timeout=60, what="the approval after restart")
        await asyncio.sleep(3)  # anything sent twice would arrive now
        [note] = approvals(tg, 1001)
        assert "Lê Thị Hoa" in note
        assert not any(
            "đã duyệt em Lê Thị Hoa" in (m.text or "") for m in tg.messages_to(2001) if "Hiệu trưởng" in (m.text or "")
        )
    finally:
        await bot.stop()
