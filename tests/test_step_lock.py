"""One person's steps across processes: serialised per chat account, in the platform's order.

Two engines on one database stand for two worker processes (each has its own connection pool). The
multi-process proof with real `fieldbot run` workers is tests/e2e/test_e2e_workers.py.
"""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import text
from sqlmodel import Session, select

from storage.models import ChatIdentity, Conversation
from tests.conftest import require_postgres
from tests.engine_helpers import CONSENT_LABEL, Chat, make_engine


def _conv(db, staff_id: int) -> Conversation | None:
    with Session(db) as s:
        return s.exec(select(Conversation).where(Conversation.staff_id == staff_id)).first()


def _staff_id(db, user_id: str) -> int:
    with Session(db) as s:
        return s.exec(select(ChatIdentity).where(ChatIdentity.external_id == user_id)).one().staff_id


async def test_an_older_message_arriving_late_is_refused_and_said(db_engine, world, programme, clock) -> None:
    worker_a = make_engine(db_engine, programme, clock)
    worker_b = make_engine(db_engine, programme, clock)
    teacher = await Chat.linked(worker_a, world.phones["teacher_a"])
    on_b = Chat(worker_b, teacher.user_id)
    await teacher.send(text="/dangky", seq=10)
    await teacher.tap(CONSENT_LABEL)  # the guardian's consent comes first (a tap: no order)
    assert "Họ và tên" in teacher.text
    await teacher.send(text="Nguyễn Văn An", seq=12)
    assert "Ngày sinh" in teacher.text
    # Message 11 was typed before 12 but reaches the other worker only now: it must not become the birth date
    # (nor overwrite the name); the person is told and sees the current question again.
    await on_b.send(text="Lê Thị Bé", seq=11)
    assert "đến chậm" in on_b.text and "Lê Thị Bé" in on_b.text
    assert "Ngày sinh" in on_b.text
    conv = _conv(db_engine, _staff_id(db_engine, teacher.user_id))
    assert conv is not None and conv.step != "full_name"
    assert "Lê Thị Bé" not in str(conv.data) and "Nguyễn Văn An" in str(conv.data)
    # The next message in order is applied as usual, wherever it lands.
    await on_b.send(text="05/09/2012", seq=13)
    assert "Lớp" in on_b.text


async def test_messages_without_an_order_and_equal_orders_are_applied(db_engine, world, programme, clock) -> None:
    eng = make_engine(db_engine, programme, clock)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    await teacher.send(text="/dangky", seq=5)
    await teacher.tap(CONSENT_LABEL)
    await teacher.send(text="Nguyễn Văn An")  # console/tap style: no order given, never refused
    assert "Ngày sinh" in teacher.text
    await teacher.send(text="05/09/2012", seq=5)  # same order (another id): not older, applied
    assert "Lớp" in teacher.text
    with Session(db_engine) as s:
        assert s.exec(select(ChatIdentity.last_seq).where(ChatIdentity.external_id == teacher.user_id)).one() == 5


async def test_a_late_message_is_remembered_so_its_redelivery_is_silent(db_engine, world, programme, clock) -> None:
    eng = make_engine(db_engine, programme, clock)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    await teacher.send(text="/dangky", seq=3)
    await teacher.send(text="Nguyễn Văn An", seq=1, message_id="late-1")
    assert "đến chậm" in teacher.text
    assert await teacher.resend() == []


def _lock_holder(url_engine, who: str, hold: threading.Event, held: threading.Event) -> None:
    with url_engine.connect() as conn, conn.begin():
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || :w, 0))"), {"w": who}
        )
        held.set()
        hold.wait(10)


async def test_postgres_waits_a_bounded_time_for_the_persons_lock(pg_schema_url, programme, clock) -> None:
    """Another process holds this person's step: the wait ends with a clear message, nothing is stored, and
    the same message sent again once the lock is free is processed (it was not marked as handled)."""
    require_postgres()
    from storage.db import create_all
    from storage.db import make_engine as make_db
    from tests.factories import seed_world

    db = make_db(pg_schema_url)
    create_all(db)
    world = seed_world(db, now=clock.now())
    eng = make_engine(db, programme, clock, lock_timeout_ms=200)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    await teacher.send(text="/dangky", seq=1)
    await teacher.tap(CONSENT_LABEL)  # the guardian's consent comes first
    hold, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_lock_holder, args=(db, f"telegram:{teacher.user_id}", hold, held))
    holder.start()
    try:
        assert await asyncio.to_thread(held.wait, 10)
        await teacher.send(text="Nguyễn Văn An", seq=2, message_id="busy-1")
        assert "đang được xử lý" in teacher.text and "gửi lại" in teacher.text
        conv = _conv(db, _staff_id(db, teacher.user_id))
        assert conv is not None and conv.step == "full_name"
    finally:
        hold.set()
        holder.join()
    await teacher.resend()
    assert "Ngày sinh" in teacher.text
    db.dispose()


async def test_the_persons_lock_serialises_two_workers(pg_schema_url, programme, clock) -> None:
    """A step that started while another worker's step for the same person was running reads what that step
    committed (the read happens after the lock), so neither answer is lost."""
    require_postgres()
    from storage.db import create_all
    from storage.db import make_engine as make_db
    from tests.factories import seed_world

    db = make_db(pg_schema_url)
    create_all(db)
    world = seed_world(db, now=clock.now())
    worker_a = make_engine(db, programme, clock)
    db_b = make_db(pg_schema_url)
    worker_b = make_engine(db_b, programme, clock)
    teacher = await Chat.linked(worker_a, world.phones["teacher_a"])
    await teacher.send(text="/dangky", seq=1)
    await teacher.tap(CONSENT_LABEL)  # the guardian's consent comes first
    on_b = Chat(worker_b, teacher.user_id)
    # Hold the person's lock, let both workers start their step, then let go: they must run one after the
    # other, the second seeing the first's progress.
    hold, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_lock_holder, args=(db, f"telegram:{teacher.user_id}", hold, held))
    holder.start()
    assert await asyncio.to_thread(held.wait, 10)

    def step(chat: Chat, body: str, seq: int):
        return asyncio.run(chat.send(text=body, seq=seq))

    first = asyncio.create_task(asyncio.to_thread(step, teacher, "Nguyễn Văn An", 2))
    second = asyncio.create_task(asyncio.to_thread(step, on_b, "Lê Thị Bé", 3))
    await asyncio.sleep(0.3)
    hold.set()
    await asyncio.gather(first, second)
    holder.join()
    conv = _conv(db, _staff_id(db, teacher.user_id))
    assert conv is not None
    # In turn, whichever went first: "An" then "Bé" (refused as a birth date), or "Bé" then "An" (refused as
    # late). Either way exactly one reply took its answer as the name; without the lock both would have,
    # and one name would be lost without a word to the person.
    took_name = [c for c in (teacher, on_b) if c.text.startswith("Ngày sinh")]
    assert len(took_name) == 1, (teacher.text, on_b.text)
    stored = "Nguyễn Văn An" if took_name[0] is teacher else "Lê Thị Bé"
    assert stored in str(conv.data)
    other = on_b if took_name[0] is teacher else teacher
    assert "chưa đúng dạng" in other.text or "đến chậm" in other.text
    db.dispose()
    db_b.dispose()
