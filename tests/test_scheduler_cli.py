"""`fieldbot sweep --now ... [--dry-run]` through the real command line, delivering to the fake Bot API."""

from __future__ import annotations

import asyncio
import os
from datetime import date

import pytest

from bot.cli import main
from core.vocabulary import NotificationStatus
from storage.db import make_engine
from tests.factories import add_handover, link, local, rows, seed_world
from tests.fakes.telegram_api import FakeTelegram

OFFICER_CHAT = 8001
PRINCIPAL_CHAT = 8002


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    return url


@pytest.fixture
def seeded(env, programme):
    assert main(["db", "upgrade"]) == 0  # the schema from the migrations, as an operator has it
    engine = make_engine(env)
    w = seed_world(engine, now=local(2021, 11, 17, 8))
    add_handover(
        engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    link(engine, staff_id=w.officer, chat_id=str(OFFICER_CHAT), linked_at=local(2021, 11, 1))
    link(engine, staff_id=w.principal_a, chat_id=str(PRINCIPAL_CHAT), linked_at=local(2021, 11, 1))
    yield engine, w
    engine.dispose()


def test_dry_run_lists_and_records_nothing(seeded, capsys):
    engine, _ = seeded
    assert main(["sweep", "--now", "2021-11-21T08:00:00+07:00", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Quét lúc 08:00 21/11/2021" in out and "chạy thử" in out
    assert "[Báo cáo nhu cầu · báo cáo vượt cấp · late] → Lê Minh Tiến + email leminhtien@tptdm.edu.vn" in out
    assert "[Cập nhật CSDL ngành · báo cáo vượt cấp · late]" in out
    assert rows(engine) == []


def test_bad_moment_is_one_clear_line(seeded, capsys):
    assert main(["sweep", "--now", "21/11/2021 8h"]) == 2
    err = capsys.readouterr().err
    assert "--now: thời điểm không hợp lệ" in err and "Traceback" not in err


async def test_sweep_delivers_over_telegram_and_prints_it(seeded, monkeypatch, capsys):
    engine, w = seeded
    async with FakeTelegram() as fake:
        fake.user(OFFICER_CHAT, "Tiến")
        fake.user(PRINCIPAL_CHAT, "Lan")
        monkeypatch.setenv("FIELDBOT_TELEGRAM_TOKEN", fake.token)
        monkeypatch.setenv("FIELDBOT_TELEGRAM_API_URL", fake.root)
        # main() runs its own event loop: in a thread, while the fake server answers on this one.
        assert await asyncio.to_thread(main, ["sweep", "--now", "2021-11-21T08:00:00+07:00"]) == 0
        out = capsys.readouterr().out
        officer = fake.texts(OFFICER_CHAT)
        assert any("trường chưa chốt báo cáo nhu cầu" in t for t in officer)
        assert any("quá hạn cập nhật CSDL ngành" in t for t in officer)
        assert "Đã gửi" in out and "✓ Lê Minh Tiến" in out
        # The same moment again: nothing new, nothing sent twice.
        assert await asyncio.to_thread(main, ["sweep", "--now", "2021-11-21T08:05:00+07:00"]) == 0
        assert "0 mới" in capsys.readouterr().out
        assert fake.texts(OFFICER_CHAT) == officer
    sent = rows(engine, recipient_id=w.officer)
    assert sent and {r.channels_done for r in sent if r.status == NotificationStatus.SENT} == {"telegram"}
    # No SMTP configured: the chat copy is what there is, and the row says so.
    assert all("SMTP" in (r.last_error or "") for r in sent if r.email)


def test_telegram_down_at_start_records_and_keeps_the_messages(seeded, monkeypatch, capsys):
    engine, w = seeded
    monkeypatch.setenv("FIELDBOT_TELEGRAM_TOKEN", "123456:TEST-TOKEN")
    monkeypatch.setenv("FIELDBOT_TELEGRAM_API_URL", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setenv("FIELDBOT_SMTP_URL", "smtp://127.0.0.1:9?timeout=2")
    assert main(["sweep", "--now", "2021-11-21T08:00:00+07:00"]) == 0
    out = capsys.readouterr().out
    assert "Không kết nối được Telegram" in out and "Traceback" not in out
    officer = rows(engine, recipient_id=w.officer)
    assert officer and {r.status for r in officer} == {NotificationStatus.PENDING}  # waiting, not failed
