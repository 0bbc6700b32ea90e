"""Database faults under a running engine: a second SQLite writer, a PostgreSQL server that drops us."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, func, select, text

import storage.db as dbmod
from conversations.engine import ConversationEngine
from core.messages import Incoming
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


def _terminate(tag: str) -> int:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = :tag"),
            {"tag": tag},
        ).scalar_one()
    admin.dispose()
    return killed


@pytest.mark.parametrize("ping", ["socket", "none"])
async def test_a_connection_ended_by_the_server_costs_no_answer(pg_schema_url, programme, clock, ping) -> None:
    """The pool's check on checkout looks at the socket instead of a SELECT 1 round trip (storage.db). When it
    cannot tell (ping "none": a backend ended the instant before, or a host gone without closing the
    socket), the step's first statement fails on the dead connection and the step starts once more on a
    fresh one: the teacher sees the next question, not an apology."""
    tag = f"fieldbot_ping_{ping}"
    db = make_engine(f"{pg_schema_url}&application_name={tag}")
    if ping == "none":
        db.dialect.do_ping = lambda _dbapi_connection: True
    create_all(db)
    world = seed_world(db, now=clock.now())
    teacher = await Chat.linked(ConversationEngine(db=db, programme=programme, clock=clock), world.phones["teacher_a"])
    await teacher.say("/dangky")
    await teacher.tap(CONSENT_LABEL)
    assert _terminate(tag) >= 1  # waits until the backends are gone
    # Straight to the engine: the step, not the test's own bookkeeping, is the first to meet the dead pool.
    replies = await teacher.engine.handle(
        Incoming(
            channel="telegram",
            user_id=teacher.user_id,
            chat_id=teacher.chat_id,
            received_at=clock.now(),
            message_id="after-terminate",
            text="Nguyễn Văn An",
        )
    )
    text_ = "\n".join(r.text or "" for r in replies)
    assert "Ngày sinh" in text_ and "Xin lỗi" not in text_
    with session_scope(db) as s:
        assert "Nguyễn Văn An" in str(s.execute(select(Conversation.data)).scalar_one())
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
    # What a PostgreSQL restart looks like from the bot: every pooled connection is cut (and gone by the time
    # the next message comes: pg_terminate_backend waits for that).
    assert _terminate(tag) >= 1
    await teacher.say("Nguyễn Văn An")
    assert "Ngày sinh" in teacher.text
    db.dispose()
