"""Database faults under a running engine: a second SQLite writer, a PostgreSQL server that drops us."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, func, select, text

import storage.db as dbmod
from conversations.engine import ConversationEngine
from storage.db import create_all, make_engine, session_scope
from storage.models import Conversation
from tests.conftest import PG_URL
from tests.engine_helpers import CONSENT_LABEL, Chat
from tests.factories import seed_world


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr(dbmod, "SQLITE_BUSY_TIMEOUT_MS", 400)


def _locker(path: str) -> sqlite3.Connection:
    """Another process's writer: holds SQLite's write lock until rolled back."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_sqlite_busy_waits_for_the_other_writer(tmp_path, short_busy_timeout, programme, clock) -> None:
    path = str(tmp_path / "busy.db")
    db = make_engine(f"sqlite:///{path}")
    create_all(db)
    world = seed_world(db, now=clock.now())
    teacher = await Chat.linked(ConversationEngine(db=db, programme=programme, clock=clock), world.phones["teacher_a"])
    lock = _locker(path)
    threading.Timer(0.15, lock.rollback).start()  # released well within the busy timeout
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    assert "Họ và tên" in teacher.text
    lock.close()
    db.dispose()


async def test_sqlite_busy_beyond_the_timeout_is_a_clear_message_and_a_second_chance(
    tmp_path, short_busy_timeout, programme, clock
) -> None:
    path = str(tmp_path / "busy.db")
    db = make_engine(f"sqlite:///{path}")
    create_all(db)
    world = seed_world(db, now=clock.now())
    teacher = await Chat.linked(ConversationEngine(db=db, programme=programme, clock=clock), world.phones["teacher_a"])
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    lock = _locker(path)
    await teacher.say("Nguyễn Văn An")
    assert "Xin lỗi" in teacher.text and "vẫn được giữ" in teacher.text
    lock.rollback()
    lock.close()
    await teacher.say("Nguyễn Văn An")  # the same answer again, now that the other writer is done
    assert "Ngày sinh" in teacher.text
    with session_scope(db) as s:
        assert s.exec(select(func.count()).select_from(Conversation)).scalar_one() == 1
    db.dispose()


async def test_postgres_connections_dropped_under_the_bot_reconnect(pg_schema_url, programme, clock) -> None:
    tag = "fieldbot_reconnect_test"
    url = f"{pg_schema_url}&application_name={tag}"
    db = make_engine(url)
    create_all(db)
    world = seed_world(db, now=clock.now())
    teacher = await Chat.linked(ConversationEngine(db=db, programme=programme, clock=clock), world.phones["teacher_a"])
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    # What a PostgreSQL restart looks like from the bot: every pooled connection is cut.
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :tag"),
            {"tag": tag},
        ).scalar_one()
    admin.dispose()
    assert killed >= 1
    await teacher.say("Nguyễn Văn An")
    assert "Ngày sinh" in teacher.text
    db.dispose()
