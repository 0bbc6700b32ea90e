"""Zalo through the real `fieldbot run` process, against the fake Zalo platform answering as documented
(issue 14): 403 is an internal server error to retry, never "the teacher blocked the bot".

- a 403 on a reminder is retried and the reminder still arrives on Zalo; the principal stays linked;
- a 403 on a reply is retried and the form continues without a false "not handled" message;
- a blocked mark (Zalo and Telegram) is lifted by the person's next message, so the next approval reaches
  the teacher on Zalo (through another 403);
- voice and hidden ("unsupported") messages get a friendly answer;
- webhook mode answers the platform's verification request (listener first) and a failed verification, like
  polling while a webhook is set, stops start-up with one line.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.settings import DEFAULT_PROGRAMME
from bot.zalo.adapter import SORRY
from core.clock import LOCAL_TZ, SystemClock
from storage.db import make_engine
from tests.conftest import sqlite_url
from tests.e2e.harness import EXAMPLE_ROSTER, BotProcess, bot_env, free_port
from tests.e2e.harness import link as link_telegram
from tests.factories import link
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.zalo_api import TOKEN, FakeZaloApi, zalo_fake  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

NUMBERED = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)
LAN, MINH, HA = "+84901000001", "+84901000002", "+84901000003"  # principal, teachers of Phú Hòa 1
HOOK_SECRET = "zalo-hook-Secret-42"
HOOK_URL = "https://bot.truong.test/zalo/hook"


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


class ZaloPerson:
    """One person on Zalo: types, picks numbered options, reads replies in order (a cursor over their chat)."""

    def __init__(self, fake: FakeZaloApi, user_id: str) -> None:
        self.fake = fake
        self.user_id = user_id
        self.cursor = 0

    @property
    def inbox(self) -> list[str]:
        return self.fake.texts(self.user_id)

    async def expect(self, needle: str, timeout: float = 30.0) -> str:
        def found() -> int | None:
            for i, t in enumerate(self.inbox[self.cursor :], start=self.cursor):
                if needle.lower() in t.lower():
                    return i
            return None

        try:
            await self.fake.wait_until(lambda: found() is not None, timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"{self.user_id} never got {needle!r}; unread: {self.inbox[self.cursor :]}") from None
        index = found()
        self.cursor = index + 1
        return self.inbox[index]

    async def send(self, update: dict, expect: str) -> str:
        self.fake.push(update)
        return await self.expect(expect)

    async def say(self, words: str, expect: str) -> str:
        return await self.send(self.fake.text_update(words, user_id=self.user_id), expect)

    async def pick(self, label: str, expect: str) -> str:
        """The number of the option containing ``label`` in the newest numbered list shown to this person."""
        for shown in reversed(self.inbox):
            numbers = [n for n, option in NUMBERED.findall(shown) if label.lower() in option.lower()]
            if numbers:
                return await self.say(numbers[0], expect)
        raise AssertionError(f"no option {label!r} shown to {self.user_id}")


def zalo_env(tmp_path, tg: FakeTelegram, zalo: FakeZaloApi, **extra: str) -> dict[str, str]:
    today = SystemClock().now().astimezone(LOCAL_TZ).date()
    programme = tmp_path / "programme.toml"
    programme.write_text(  # the needs report is due tomorrow, no quiet hours: principals are reminded at once
        DEFAULT_PROGRAMME.read_text(encoding="utf-8")
        .replace('needs_report = "20/11/2021"', f'needs_report = "{today + timedelta(days=1):%d/%m/%Y}"')
        .replace('quiet_hours = "21:00-06:30"', 'quiet_hours = "00:00-00:00"')
        # Reminders at midnight: at 00:30 local a 07:00 morning is still to come (whatever time the test runs).
        .replace('morning = "07:00"', 'morning = "00:00"'),
        encoding="utf-8",
    )
    return bot_env(
        tmp_path,
        tg,
        FIELDBOT_ZALO_TOKEN=TOKEN,
        FIELDBOT_ZALO_API_URL=zalo.api_url,
        FIELDBOT_PROGRAMME=str(programme),
        **extra,
    )


async def recorded(tmp_path, staff: int, rule: str, timeout: float = 10.0) -> tuple:
    """(status, channels_done) of a person's notification of ``rule`` once the deliverer has recorded it."""
    statement = "SELECT status, channels_done FROM notification WHERE recipient_id = :s AND rule = :r"
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        [(status, channels)] = sql(tmp_path, statement, s=staff, r=rule)
        if status != "pending" or asyncio.get_running_loop().time() > deadline:
            return status, channels
        await asyncio.sleep(0.05)


def webhook_env(tmp_path, tg: FakeTelegram, zalo: FakeZaloApi, port: int) -> dict[str, str]:
    """Zalo in webhook mode, listening on ``port`` behind the (fake) proxy at the registered public URL."""
    return zalo_env(
        tmp_path,
        tg,
        zalo,
        FIELDBOT_ZALO_WEBHOOK_URL=HOOK_URL,
        FIELDBOT_ZALO_WEBHOOK_SECRET=HOOK_SECRET,
        FIELDBOT_ZALO_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    )


def sql(tmp_path, statement: str, **params):
    db = make_engine(sqlite_url(tmp_path))
    try:
        with db.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None
    finally:
        db.dispose()


def one_error_line(stderr: str) -> str:
    """The operator's one line (the last; the log lines before it are INFO); no other error anywhere."""
    lines = stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("Lỗi:") or " ERROR " in x or " WARNING " in x] == lines[-1:], stderr
    return lines[-1]


def staff_id(tmp_path, phone: str) -> int:
    return sql(tmp_path, "SELECT id FROM staff WHERE phone = :p", p=phone)[0][0]


def blocked_at(tmp_path, external_id: str):
    return sql(tmp_path, "SELECT blocked_at FROM chat_identity WHERE external_id = :e", e=external_id)[0][0]


async def test_zalo_through_fieldbot_run_survives_403s_and_lifts_blocked_marks(tg, zalo_fake, tmp_path) -> None:
    zalo = zalo_fake
    bot = BotProcess(zalo_env(tmp_path, tg, zalo), cwd=tmp_path)
    bot.cli("roster", "import", str(EXAMPLE_ROSTER))
    db = make_engine(sqlite_url(tmp_path))
    try:
        linked_at = SystemClock().now() - timedelta(days=30)
        link(db, staff_id=staff_id(tmp_path, LAN), channel="zalo", chat_id="z-lan", linked_at=linked_at)
        link(db, staff_id=staff_id(tmp_path, MINH), channel="zalo", chat_id="z-minh", linked_at=linked_at)
    finally:
        db.dispose()
    # The teacher's chat carries a blocked mark, as one 403 used to leave behind.
    sql(tmp_path, "UPDATE chat_identity SET blocked_at = linked_at WHERE external_id = 'z-minh'")
    zalo.fail_next("sendMessage", status=403, count=2, chat_id="z-lan")  # the reminder meets two 403s

    await bot.start()  # with the scheduler: its catch-up sweep reminds the principals at once
    try:
        lan, minh = ZaloPerson(zalo, "z-lan"), ZaloPerson(zalo, "z-minh")

        # 1. The reminder arrives on Zalo after the retries; the principal stays linked.
        await lan.expect("báo cáo nhu cầu", timeout=60)
        refused = [c for c in zalo.method_calls("sendMessage") if c.params.get("chat_id") == "z-lan"]
        assert len(refused) >= 3  # two answered 403, then delivered
        assert blocked_at(tmp_path, "z-lan") is None
        # The outcome is recorded once the send has returned: moments after the message is seen, not before.
        assert await recorded(tmp_path, staff_id(tmp_path, LAN), "needs_report") == ("sent", "zalo")

        # 2. The teacher writes: his blocked mark goes; the reply meets two 403s and still comes, once.
        zalo.fail_next("sendMessage", status=403, count=2, chat_id="z-minh")
        await minh.say("/dangky", expect="đồng ý")  # the consent step comes first
        assert blocked_at(tmp_path, "z-minh") is None
        await minh.pick("Phụ huynh đã đồng ý", expect="Họ và tên")
        await minh.say("Lê Thị Hoa", expect="Ngày sinh")  # the form continues: no answering twice
        await minh.say("05/09/2016", expect="Lớp")
        await minh.say("4A1", expect="Mã định danh")
        await minh.say("0123456789", expect="Giới tính")
        # 3. Voice and hidden messages mid-form: a friendly answer, and the question again.
        await minh.send(zalo.voice_update(user_id="z-minh"), expect="chưa nghe được tin nhắn thoại")
        await minh.expect("Giới tính")
        await minh.send(zalo.unsupported_update(user_id="z-minh"), expect="Zalo không chuyển nội dung")
        await minh.pick("Nữ", expect="đối tượng")
        await minh.pick("Hộ nghèo", expect="cần hỗ trợ gì")
        await minh.pick("Máy tính", expect="giám hộ")
        await minh.pick("Bỏ qua", expect="Số điện thoại người giám hộ")
        await minh.pick("Bỏ qua", expect="Ghi chú")
        await minh.pick("Bỏ qua", expect="Kiểm tra lại")
        await minh.pick("Lưu", expect="Đã lưu")
        await lan.expect("Lê Thị Hoa")  # the principal is told on Zalo

        # 4. The approval reaches the teacher on Zalo, through two more 403s.
        await lan.say("/duyet", expect="Đăng ký chờ duyệt")
        await lan.pick("Đăng ký chờ duyệt", expect="Lê Thị Hoa")
        zalo.fail_next("sendMessage", status=403, count=2, chat_id="z-minh")
        await lan.pick("Duyệt", expect="Đã duyệt em Lê Thị Hoa")
        await minh.expect("đã duyệt")
        assert blocked_at(tmp_path, "z-minh") is None and blocked_at(tmp_path, "z-lan") is None

        # 5. Telegram too: a marked chat is cleared by the person's next message.
        await link_telegram(tg, 1003, "Lý Thu Hà", HA)
        sql(tmp_path, "UPDATE chat_identity SET blocked_at = linked_at WHERE external_id = '1003'")
        assert blocked_at(tmp_path, "1003") is not None
        before = len(tg.messages_to(1003))
        tg.user(1003, "Hà").send_text("/menu")
        await tg.wait_for(lambda: len(tg.messages_to(1003)) > before, 30, what="the menu")
        assert blocked_at(tmp_path, "1003") is None
    finally:
        code = await bot.stop()
    everything = [c.params.get("text") for c in zalo.method_calls("sendMessage")]
    assert SORRY("vi") not in everything  # never "your message was not handled"
    assert code == 0 and "Traceback" not in bot.text


async def test_webhook_start_up_answers_the_verification_then_serves(tg, zalo_fake, tmp_path) -> None:
    port = free_port()
    zalo_fake.webhook_target = f"http://127.0.0.1:{port}"  # the reverse proxy in front of the bot
    env = webhook_env(tmp_path, tg, zalo_fake, port)
    bot = BotProcess(env, cwd=tmp_path)
    await bot.start("--no-scheduler")
    try:
        assert zalo_fake.verifications == [(200, "webhook.ok")]  # the listener was up during setWebhook
        assert "zalo webhook set to https://bot.truong.test/zalo/hook and verified" in bot.text
        status = await zalo_fake.deliver_webhook(zalo_fake.bare(zalo_fake.text_update("xin chào", user_id="z-new")))
        assert status == 200
        await zalo_fake.wait_sent(1, timeout=30)
        assert "gõ số điện thoại" in zalo_fake.texts("z-new")[0].lower()
        assert (
            await zalo_fake.deliver_webhook(zalo_fake.text_update("x", user_id="z-new"), secret="wrong-secret") == 403
        )
    finally:
        assert await bot.stop() == 0
    assert HOOK_SECRET not in bot.text and TOKEN not in bot.text


async def test_a_worker_serves_zalos_webhook_without_registering_it(tg, zalo_fake, tmp_path) -> None:
    """Several processes behind one proxy (docs/deploy.md): only the primary calls setWebhook; a worker serves the
    same webhook, secret checked; a worker without a webhook (it would poll) is refused with one line."""
    port = free_port()
    env = webhook_env(tmp_path, tg, zalo_fake, port)
    del env["FIELDBOT_TELEGRAM_TOKEN"]  # Zalo only: a Telegram worker needs its own webhook settings
    zalo_fake.webhook_target = f"http://127.0.0.1:{port}"
    # As the primary left it: the platform posts to the registered URL, through the proxy, to this worker.
    zalo_fake.webhook = {"url": "https://bot.truong.test/zalo/hook", "secret_token": HOOK_SECRET}
    bot = BotProcess(env, cwd=tmp_path)
    await bot.start("--role", "worker")
    try:
        assert not zalo_fake.method_calls("setWebhook") and zalo_fake.verifications == []
        assert "the primary registers it" in bot.text
        assert await zalo_fake.deliver_webhook(zalo_fake.bare(zalo_fake.text_update("xin chào", user_id="z-w"))) == 200
        await zalo_fake.wait_sent(1, timeout=30)
        assert "gõ số điện thoại" in zalo_fake.texts("z-w")[0].lower()
        assert await zalo_fake.deliver_webhook(zalo_fake.text_update("x", user_id="z-w"), secret="wrong") == 403
    finally:
        assert await bot.stop() == 0

    polling = {k: v for k, v in env.items() if not k.startswith("FIELDBOT_ZALO_WEBHOOK")}
    out = await BotProcess(polling, cwd=tmp_path).acli("run", "--role", "worker", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert one_error_line(out.stderr).startswith("Lỗi: FIELDBOT_ROLE=worker cần FIELDBOT_ZALO_WEBHOOK_URL")
    assert not zalo_fake.method_calls("getUpdates") and not zalo_fake.method_calls("setWebhook")


async def test_failed_verification_and_a_webhook_left_set_stop_with_one_line(tg, zalo_fake, tmp_path) -> None:
    port = free_port()
    zalo_fake.webhook_target = f"http://127.0.0.1:{free_port()}"  # the proxy forwards somewhere else
    env = webhook_env(tmp_path, tg, zalo_fake, port)
    bot = BotProcess(env, cwd=tmp_path)
    out = await bot.acli("run", "--no-scheduler", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    assert line.startswith("Lỗi: Zalo không kiểm tra được webhook https://bot.truong.test/zalo/hook")
    assert "webhook.err.unreachable" in line and f"127.0.0.1:{port}" in line
    assert "Traceback" not in out.stdout + out.stderr and "fieldbot is running" not in out.stdout
    assert zalo_fake.verifications == [(None, "webhook.err.unreachable")]

    # The webhook is still set at Zalo; polling now is refused: one line, naming deleteWebhook, nothing deleted.
    polling = {k: v for k, v in env.items() if not k.startswith("FIELDBOT_ZALO_WEBHOOK")}
    out = await BotProcess(polling, cwd=tmp_path).acli("run", "--no-scheduler", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    assert "https://bot.truong.test/zalo/hook" in line and "deleteWebhook" in line and TOKEN not in line
    assert zalo_fake.webhook["url"] == "https://bot.truong.test/zalo/hook"
    assert not zalo_fake.method_calls("deleteWebhook") and not zalo_fake.method_calls("getUpdates")
