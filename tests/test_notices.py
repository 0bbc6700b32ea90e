"""One delivery path: a message one person's step sends another ("your registration was approved") is an
outbox row written in the step's transaction, delivered by the deliverer with its retries, woken at once,
and shown by the console at its next prompt."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from bot.console import ConsoleChannel, ConsoleSender
from core.messages import Outgoing
from core.ports import RetryLater
from core.vocabulary import NotificationStatus
from scheduler.delivery import Deliverer, Waker
from storage.models import Notification
from storage.outbox import NOTICE, claim, queue_notice
from tests.engine_helpers import Chat, make_engine
from tests.factories import link
from tests.test_forms_review import _seed


class Flaky:
    """A Telegram sender whose first ``fail`` sends time out like a 5xx."""

    channel = "telegram"

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, message: Outgoing) -> None:
        if self.fail:
            self.fail -= 1
            raise RetryLater("502 Bad Gateway")
        self.sent.append((chat_id, message.text))


def notices(db) -> list[Notification]:
    with Session(db) as s:
        return list(s.scalars(select(Notification).where(Notification.rule == NOTICE).order_by(Notification.id)))


async def _approve_first(sqlite_engine, sqlite_world, clock, programme, **engine_kwargs):
    eng = make_engine(sqlite_engine, programme, clock, **engine_kwargs)
    _seed(sqlite_engine, sqlite_world, clock, 1)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    if principal.has_option("Đăng ký chờ duyệt"):
        await principal.tap("Đăng ký chờ duyệt")
    await principal.tap("Duyệt")
    return eng, teacher, principal


async def test_approval_is_an_outbox_row_worded_for_the_teacher(sqlite_engine, sqlite_world, clock, programme) -> None:
    _, teacher, principal = await _approve_first(sqlite_engine, sqlite_world, clock, programme)
    [row] = notices(sqlite_engine)
    assert row.recipient_id == sqlite_world.teacher_a and row.status == NotificationStatus.PENDING
    assert "đã duyệt" in row.text and "Nguyễn Văn A" in row.text
    # The principal's own screen has the principal's confirmation, never the teacher's wording.
    assert "Đã duyệt em Nguyễn Văn A" in principal.text and row.text not in principal.text
    [note] = principal.notifications
    assert note.chat_id == teacher.chat_id


async def test_a_failed_step_queues_nothing(sqlite_engine, sqlite_world, clock, programme, monkeypatch) -> None:
    from conversations import engine as engine_mod

    real_queue = engine_mod.ConversationEngine._queue_notifications

    def queue_then_fail(self, step):
        real_queue(self, step)  # the row is written in the step's transaction ...
        if step.queued:
            raise RuntimeError("database went away")  # ... which then fails before its commit

    monkeypatch.setattr(engine_mod.ConversationEngine, "_queue_notifications", queue_then_fail)
    _, _, principal = await _approve_first(sqlite_engine, sqlite_world, clock, programme)
    assert "Xin lỗi" in principal.text
    assert notices(sqlite_engine) == []


async def test_a_5xx_is_retried_then_delivered_once(sqlite_engine, sqlite_world, clock, programme) -> None:
    await _approve_first(sqlite_engine, sqlite_world, clock, programme)
    tg = Flaky(fail=1)
    deliverer = Deliverer(db=sqlite_engine, programme=programme, clock=clock, senders={"telegram": tg})
    report = await deliverer.deliver_due()
    assert report.rows_retrying == 1 and tg.sent == []
    [row] = notices(sqlite_engine)
    assert row.status == NotificationStatus.PENDING and row.attempts == 1 and "502" in row.last_error
    clock.advance(timedelta(minutes=2))  # past the first backoff
    await deliverer.deliver_due()
    await deliverer.deliver_due()
    assert len(tg.sent) == 1 and "đã duyệt" in tg.sent[0][1]
    [row] = notices(sqlite_engine)
    assert row.status == NotificationStatus.SENT and row.channels_done == "telegram"


async def test_the_step_wakes_the_deliverer_at_once(sqlite_engine, sqlite_world, clock, programme) -> None:
    tg = Flaky()
    waker = Waker(Deliverer(db=sqlite_engine, programme=programme, clock=clock, senders={"telegram": tg}))
    woken = []
    eng, teacher, _ = await _approve_first(
        sqlite_engine, sqlite_world, clock, programme, on_queued=lambda: (woken.append(1), waker.poke())
    )
    assert woken == [1]  # the approval, not the steps before it
    await asyncio.wait_for(waker.idle(), 10)
    assert [chat for chat, _ in tg.sent] == [teacher.chat_id]
    assert notices(sqlite_engine)[0].status == NotificationStatus.SENT


async def test_two_deliverers_never_send_one_row_twice(db_engine, world, clock, programme) -> None:
    """The scheduler's deliverer and a worker's woken one, at the same moment: each row is claimed once."""
    with Session(db_engine) as s:
        for i in range(30):
            queue_notice(s, recipient_id=world.teacher_a, text=f"tin {i}", now=clock.now(), origin=f"t:{i}")
        s.commit()
    link(db_engine, staff_id=world.teacher_a, chat_id="55", linked_at=clock.now())
    a, b = Flaky(), Flaky()
    first = Deliverer(db=db_engine, programme=programme, clock=clock, senders={"telegram": a}, batch_size=7)
    second = Deliverer(db=db_engine, programme=programme, clock=clock, senders={"telegram": b}, batch_size=5)
    await asyncio.gather(first.deliver_due(), second.deliver_due())
    texts = [t for _, t in a.sent + b.sent]
    assert sorted(texts) == sorted(f"tin {i}" for i in range(30))  # every one, once
    assert {r.status for r in notices(db_engine)} == {NotificationStatus.SENT}


async def test_a_claim_left_by_a_dead_deliverer_expires(db_engine, world, clock, programme) -> None:
    with Session(db_engine) as s:
        queue_notice(s, recipient_id=world.teacher_a, text="tin", now=clock.now(), origin="t")
        s.commit()
    link(db_engine, staff_id=world.teacher_a, chat_id="55", linked_at=clock.now())
    with Session(db_engine) as s:  # a deliverer claimed the row, then was killed before sending it
        [row] = notices(db_engine)
        assert claim(s, ids=[row.id], now=clock.now(), until=clock.now() + timedelta(minutes=2)) == {row.id}
        assert claim(s, ids=[row.id], now=clock.now(), until=clock.now() + timedelta(minutes=2)) == set()
        s.commit()
    tg = Flaky()
    deliverer = Deliverer(db=db_engine, programme=programme, clock=clock, senders={"telegram": tg})
    await deliverer.deliver_due()
    assert tg.sent == []  # still claimed
    clock.advance(timedelta(minutes=2))
    await deliverer.deliver_due()
    assert tg.sent == [("55", "tin")]


async def test_the_console_shows_a_queued_message_at_its_next_prompt(
    sqlite_engine, sqlite_world, clock, programme, tmp_path
) -> None:
    eng = make_engine(sqlite_engine, programme, clock)
    _seed(sqlite_engine, sqlite_world, clock, 1)
    phones = sqlite_world.phones
    consoles = {}
    for who in ("teacher_a", "principal_a"):
        user = f"console:{phones[who]}"
        eng.link_directly(channel="console", external_id=user, chat_id="console", phone=phones[who])
        sender = ConsoleSender()
        deliverer = Deliverer(db=sqlite_engine, programme=programme, clock=clock, senders={"console": sender})
        staff_id = getattr(sqlite_world, who)

        async def inbox(deliverer=deliverer, sender=sender, staff_id=staff_id):
            await deliverer.deliver_due(recipient_id=staff_id)
            return sender.take()

        consoles[who] = ConsoleChannel(eng.handle, user_id=user, clock=clock, media_dir=tmp_path, inbox=inbox)
    principal_screen, teacher_screen = io.StringIO(), io.StringIO()
    await consoles["principal_a"].run(["/duyet", "1", "1"], principal_screen)
    assert "Đã duyệt em Nguyễn Văn A" in principal_screen.getvalue()
    assert "Tin nhắn mới" not in principal_screen.getvalue()
    await consoles["teacher_a"].run([], teacher_screen)  # the teacher's next prompt
    shown = teacher_screen.getvalue()
    assert "Tin nhắn mới" in shown and "đã duyệt" in shown and "Nguyễn Văn A" in shown
    assert notices(sqlite_engine)[0].channels_done == "console"
    teacher_screen = io.StringIO()
    await consoles["teacher_a"].run([], teacher_screen)
    assert "Tin nhắn mới" not in teacher_screen.getvalue()  # shown once
