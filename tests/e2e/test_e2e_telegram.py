"""The whole programme through the real `fieldbot` process and a fake Telegram on loopback.

A teacher links and registers students, the principal approves and records the computers received, the
teacher hands them over with photos, the principal confirms one in the sector database; a sweep escalates
the other to the district contact (Telegram and email); the district officer asks for the summary and the
export. Then the faults: kill -9 in the middle of a form, an unreliable Bot API, the webhook secret.
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from core.clock import LOCAL_TZ, SystemClock
from tests.e2e.harness import EXAMPLE_ROSTER, BotProcess, Person, bot_env, free_port, link
from tests.photo_factory import phone_jpeg

pytestmark = pytest.mark.slow

TEACHER, PRINCIPAL, OFFICER = "0901000002", "0901000001", "0913860438"


@pytest.fixture
async def bot(tmp_path, tg, mailbox):
    process = BotProcess(bot_env(tmp_path, tg, smtp_port=mailbox.port), cwd=tmp_path)
    process.cli("roster", "import", str(EXAMPLE_ROSTER))
    yield process
    await process.stop()


async def register(teacher: Person, name: str, code: str) -> None:
    await teacher.say("/dangky", expect="đồng ý")
    await teacher.tap("Phụ huynh đã đồng ý", expect="Họ và tên")
    await teacher.say(name, expect="Ngày sinh")
    await teacher.say("05/09/2016", expect="Lớp")
    await teacher.say("4A1", expect="Mã định danh")
    await teacher.say(code, expect="Giới tính")
    await teacher.tap("Nam", expect="đối tượng")
    await teacher.tap("Hộ nghèo", expect="cần hỗ trợ gì")
    await teacher.tap("Máy tính", expect="giám hộ")
    await teacher.tap("Bỏ qua", expect="Số điện thoại người giám hộ")
    await teacher.tap("Bỏ qua", expect="Ghi chú")
    await teacher.tap("Bỏ qua", expect="Kiểm tra lại")
    await teacher.tap("Lưu", expect="Đã lưu")


async def hand_over(teacher: Person, search: str, photo_seed: int) -> int:
    await teacher.say("/bangiao", expect="Gõ một phần họ tên")
    await teacher.say(search, expect=search)
    await teacher.tap(search, expect="Lô")
    await teacher.tap("Lô", expect="Ngày bàn giao")
    await teacher.tap("Hôm nay", expect="ảnh")
    await teacher.photo(phone_jpeg(photo_seed), expect="Đã nhận 1 ảnh")
    await teacher.tap("Xong", expect="biên bản")
    await teacher.tap("Bỏ qua", expect="Kiểm tra lại")
    saved = await teacher.tap("Lưu", expect="Đã ghi nhận bàn giao")
    return int(re.search(r"#(\d+)", saved.text).group(1))


async def test_the_whole_programme_end_to_end(tg, bot, mailbox, tmp_path) -> None:
    await bot.start("--no-scheduler")
    assert {c.params.get("language_code") for c in tg.calls_of("setMyCommands")} >= {None, "en"}

    teacher_user = tg.user(1001, "Minh")
    teacher = Person(tg, teacher_user)
    await teacher.say("/dangky", expect="số điện thoại")  # unknown account: only linking is possible
    teacher_user.share_contact("+84901000001", user_id=2001)  # someone else's contact, forwarded
    await teacher.expect("của chính bạn")
    teacher = await link(tg, 1001, "Trần Văn Minh", TEACHER)
    principal = await link(tg, 2001, "Nguyễn Thị Lan", PRINCIPAL)
    officer = await link(tg, 3001, "Lê Minh Tiến", OFFICER)

    await register(teacher, "nguyễn văn an", "0123456789")
    await register(teacher, "Lê Thị Bình", "0123456780")

    await principal.say("/duyet", expect="Đăng ký chờ duyệt (2)")
    await principal.tap("Đăng ký chờ duyệt", expect="Nguyễn Văn An")
    await principal.tap("Duyệt", expect="Lê Thị Bình")
    await principal.tap("Duyệt", expect="Đã duyệt em Lê Thị Bình")
    await teacher.expect("đã duyệt")

    await principal.say("/nhanmay", expect="Ngày nhận")
    await principal.tap("Hôm nay", expect="Số lượng")
    await principal.say("5", expect="Loại máy")
    await principal.tap("xách tay", expect="Hãng")
    await principal.say("Dell Latitude 3420", expect="Tình trạng")
    await principal.tap("Mới", expect="sê-ri")
    await principal.tap("Bỏ qua", expect="Kiểm tra lại")
    await principal.tap("Lưu", expect="Đã ghi nhận lô máy")

    first = await hand_over(teacher, "An", photo_seed=11)
    await hand_over(teacher, "Bình", photo_seed=12)  # left unconfirmed: late

    await principal.say("/duyet", expect="CSDL")
    await principal.tap("CSDL", expect="Bàn giao chờ xác nhận")
    await principal.tap(f"#{first}", expect="Đã xác nhận cập nhật CSDL ngành cho 1 bàn giao")

    # Two days later the other handover is still not in the sector database: the district contact hears of it.
    later = (
        (SystemClock().now() + timedelta(days=3))
        .astimezone(LOCAL_TZ)
        .replace(hour=8, minute=0, second=0, microsecond=0)
    )
    out = await bot.acli("sweep", "--now", later.isoformat())
    assert "Lê Thị Bình" in out.stdout or "escalat" in out.stdout.lower() or out.stdout.strip()
    await officer.expect("Lê Thị Bình", timeout=30)
    await tg.wait_for(lambda: bool(mailbox.to("leminhtien@tptdm.edu.vn")), 30, what="the escalation email")
    email_text = "\n".join(m.get_body(("plain",)).get_content() for m in mailbox.to("leminhtien@tptdm.edu.vn"))
    assert "Lê Thị Bình" in email_text

    # The same sweep's morning digest, with the district's chart after it.
    def photos() -> int:
        return sum(m.method == "sendPhoto" for m in tg.messages_to(3001))

    await tg.wait_for(lambda: photos() == 1, 30, what="the digest's chart")
    assert any("Bản tin ngày" in (m.text or "") for m in tg.messages_to(3001))

    await officer.say("/tonghop", expect="Tiểu học Phú Hòa 1")
    await tg.wait_for(lambda: photos() == 2, 30, what="the chart of /tonghop")
    chart = next(m for m in reversed(tg.messages_to(3001)) if m.method == "sendPhoto")
    assert chart.file and chart.file[:8] == b"\x89PNG\r\n\x1a\n"
    await officer.say("/xuatfile", expect=".xlsx")
    await tg.wait_for(lambda: any(m.method == "sendDocument" for m in tg.messages_to(3001)), 30, what="the export")
    doc = next(m for m in reversed(tg.messages_to(3001)) if m.method == "sendDocument")
    wb = load_workbook(io.BytesIO(doc.file), read_only=True)
    names = {row[1] for row in wb["Nhu cầu"].iter_rows(min_row=2, values_only=True)}
    assert {"Nguyễn Văn An", "Lê Thị Bình"} <= names
    handovers = list(wb["Bàn giao"].iter_rows(min_row=2, values_only=True))
    assert len(handovers) == 2

    # The log: one line per update, never the token or anyone's full phone number.
    log = bot.text
    assert "update handled" in log
    assert tg.token.split(":")[1] not in log
    for phone in ("901000002", "901000001", "913860438"):
        assert phone not in log, f"a phone number leaked into the log: {phone}"


async def test_kill_9_in_the_middle_of_a_form_loses_nothing(tg, bot) -> None:
    await bot.start("--no-scheduler")
    teacher = await link(tg, 1001, "Trần Văn Minh", TEACHER)
    await teacher.say("/dangky", expect="đồng ý")
    await teacher.tap("Phụ huynh đã đồng ý", expect="Họ và tên")
    await teacher.say("Phạm Thị Cúc", expect="Ngày sinh")
    await teacher.say("12/03/2016", expect="Lớp")
    await bot.kill9()
    await bot.start("--no-scheduler")
    await teacher.say("4A2", expect="Mã định danh")  # resumes exactly where she was
    await teacher.say("0987654321", expect="Giới tính")
    await teacher.tap("Nữ", expect="đối tượng")
    await teacher.tap("Hộ cận nghèo", expect="cần hỗ trợ gì")
    await teacher.tap("Cả hai", expect="giám hộ")
    await teacher.tap("Bỏ qua", expect="Số điện thoại")
    await teacher.tap("Bỏ qua", expect="Ghi chú")
    await teacher.tap("Bỏ qua", expect="Kiểm tra lại")
    summary = teacher.inbox[teacher.cursor - 1].text
    assert "Phạm Thị Cúc" in summary and "12/03/2016" in summary and "4A2" in summary
    await teacher.tap("Lưu", expect="Đã lưu")
    mine = await teacher.say("/cuatoi", expect="hồ sơ")
    assert sum("Phạm Thị Cúc" in label for label, _ in mine.buttons) == 1  # saved once, not twice


async def test_unreliable_bot_api_loses_no_reply(tg, bot) -> None:
    await bot.start("--no-scheduler")
    teacher = await link(tg, 1001, "Trần Văn Minh", TEACHER)
    tg.fail_next("sendMessage", status=500, count=2)
    await teacher.say("/dangky", expect="đồng ý")
    await teacher.tap("Phụ huynh đã đồng ý", expect="Họ và tên")
    tg.fail_next("sendMessage", status=429, retry_after=1)
    await teacher.say("Đỗ Văn Dũng", expect="Ngày sinh")
    tg.fail_next("getUpdates", status=502, count=2)  # the long poll itself fails: PTB polls again
    await teacher.say("01/01/2016", expect="Lớp")
    assert any(e for e in tg.errors)  # the faults really happened


async def test_webhook_refuses_updates_without_the_secret(tg, tmp_path) -> None:
    import httpx

    port = free_port()
    env = bot_env(
        tmp_path,
        tg,
        FIELDBOT_TELEGRAM_WEBHOOK_URL="https://fieldbot.example.vn/telegram",
        FIELDBOT_TELEGRAM_WEBHOOK_SECRET="s3cret-token-123",
        FIELDBOT_TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
    )
    process = BotProcess(env, cwd=tmp_path)
    process.cli("roster", "import", str(EXAMPLE_ROSTER))
    await process.start("--no-scheduler")
    try:
        assert tg.webhook["secret_token"] == "s3cret-token-123"
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1637200000,
                "text": "/start",
                "chat": {"id": 1001, "type": "private"},
                "from": {"id": 1001, "is_bot": False, "first_name": "X"},
            },
        }
        tg.user(1001, "X")
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/telegram"
            no_secret = await client.post(url, json=update)
            wrong = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
            assert no_secret.status_code == 403 and wrong.status_code == 403
            await asyncio.sleep(0.5)
            assert tg.messages_to(1001) == []
            ok = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-123"})
            assert ok.status_code == 200
        await tg.wait_for(lambda: bool(tg.messages_to(1001)), 15, what="the reply to the genuine update")
        assert "s3cret-token-123" not in process.text
    finally:
        await process.stop()
