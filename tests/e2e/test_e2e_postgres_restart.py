"""A real PostgreSQL server stopped and started again under the running `fieldbot run`.

While the server is down a teacher gets a clear message (what she typed before is kept, try again); once it
is back, the bot reconnects by itself and her form goes on from the same question. The server is the test's
own (``PrivatePostgres``), so the machine's shared PostgreSQL is never restarted.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.e2e.harness import EXAMPLE_ROSTER, BotProcess, bot_env, link
from tests.e2e.private_postgres import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def server():
    pg = PrivatePostgres()
    if not pg.available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server programs (initdb, pg_ctl) not found")
        pytest.skip("PostgreSQL server programs not installed")
    pg.init()
    pg.start()
    yield pg
    pg.destroy()


async def test_postgres_restarted_under_the_running_bot(server, tg, tmp_path) -> None:
    bot = BotProcess(bot_env(tmp_path, tg, db_url=server.url), cwd=tmp_path)
    bot.cli("roster", "import", str(EXAMPLE_ROSTER))
    await bot.start()  # the scheduler too: its jobs must also live through the outage
    try:
        teacher = await link(tg, 1001, "Trần Văn Minh", "0901000002")
        await teacher.say("/dangky", expect="đồng ý")
        await teacher.tap("Phụ huynh đã đồng ý", expect="Họ và tên")
        await teacher.say("Phạm Thị Cúc", expect="Ngày sinh")

        await asyncio.to_thread(server.stop)
        await teacher.say("12/03/2016", expect="vẫn được giữ")  # the database is away: said plainly
        assert bot.proc is not None and bot.proc.returncode is None

        await asyncio.to_thread(server.start)
        await teacher.say("12/03/2016", expect="Lớp")  # reconnected; the form resumes at the same question
        await teacher.say("4A2", expect="Mã định danh")
        await teacher.say("/huy", expect="Đã hủy")
        assert bot.proc.returncode is None
        assert "Traceback" not in "\n".join(m.text or "" for m in teacher.inbox)
    finally:
        await bot.stop()
