"""A Zalo chat is given up only on evidence, and any blocked mark is lifted when the person writes again.

Zalo documents no "user blocked" answer (its 403 is an internal server error), so the ZaloSender never
says ``Unreachable``. The deliverer marks a chat blocked only when one reminder to it failed on every
attempt, for its last attempt and over at least ``unreachable_after``, while the same channel delivered to
someone else meanwhile. A message from the person on that chat (Zalo or Telegram) lifts the mark at once.
"""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

from sqlmodel import Session, select

from conversations.engine import ConversationEngine
from core.clock import FixedClock
from core.ports import RetryLater
from core.vocabulary import NotificationStatus
from scheduler.delivery import Deliverer, recipients
from scheduler.sweep import sweep
from storage.db import session_scope
from storage.models import ChatIdentity
from tests.engine_helpers import Chat
from tests.factories import add_handover, link, local, rows, submit_report
from tests.fakes.recording import RecordingMailer, RecordingSender

INTERNAL = RetryLater("zalo sendMessage 403: Internal server error")


def handovers(engine, programme, w) -> None:
    """Reminders for principal A and for teacher A (who recorded the handovers)."""
    for name in ("Trần Thị Bích", "Lê Văn Cường"):
        add_handover(
            engine,
            programme,
            school_id=w.school_a,
            recorded_by=w.teacher_a,
            handed_over_on=date(2021, 11, 17),
            created_at=local(2021, 11, 17, 9),
            name=name,
        )
    submit_report(engine, school_id=w.school_a, at=local(2021, 11, 16))


def blocked(engine, staff_id: int) -> dict[str, object]:
    with Session(engine) as s:
        return {i.channel: i.blocked_at for i in s.exec(select(ChatIdentity).where(ChatIdentity.staff_id == staff_id))}


def principal_row(engine, w):
    return [r for r in rows(engine, rule="csdl") if r.recipient_id == w.principal_a][0]


async def run_until_settled(deliverer: Deliverer, engine, w, clock: FixedClock) -> list[tuple[int, str, object]]:
    """Deliver, move the clock to the principal's next attempt, again, until the row is no longer pending.
    Returns (attempts, status, principal's zalo blocked_at) after each round."""
    seen = []
    for _ in range(20):
        await deliverer.deliver_due()
        row = principal_row(engine, w)
        seen.append((row.attempts, row.status, blocked(engine, w.principal_a)["zalo"]))
        if row.status != NotificationStatus.PENDING:
            break
        clock.set(row.next_attempt_at)
    return seen


async def test_a_chat_failing_for_hours_while_others_get_theirs_is_given_up_then_email(
    sqlite_engine, sqlite_world, programme
) -> None:
    w = sqlite_world
    handovers(sqlite_engine, programme, w)
    lan = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", chat_id="z-lan", linked_at=local(2021, 11, 1))
    minh = link(sqlite_engine, staff_id=w.teacher_a, channel="zalo", chat_id="z-minh", linked_at=local(2021, 11, 1))
    zalo, mailer = RecordingSender("zalo"), RecordingMailer()
    zalo.fail[lan] = INTERNAL
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    deliverer = Deliverer(db=sqlite_engine, programme=programme, clock=clock, senders={"zalo": zalo}, mailer=mailer)

    seen = await run_until_settled(deliverer, sqlite_engine, w, clock)

    assert len(zalo.texts(minh)) == 1  # the platform works: the teacher got theirs at the first attempt
    *before, last = seen
    assert all(status == NotificationStatus.PENDING and mark is None for _, status, mark in before)
    assert len(before) == deliverer.max_attempts - 1  # never marked on a single (or a few) 403s
    attempts, status, mark = last
    assert attempts == deliverer.max_attempts and mark is not None and status == NotificationStatus.SENT
    assert clock.now() - local(2021, 11, 18, 7) >= timedelta(hours=1)
    assert [to for to, _, _ in mailer.sent].count("lan@phuhoa1.example") == 1  # the reminder still reached her
    row = principal_row(sqlite_engine, w)
    assert row.channels_done == "email" and "403" in row.last_error and "người khác" in row.last_error
    assert blocked(sqlite_engine, w.teacher_a) == {"zalo": None}


async def test_a_platform_wide_outage_marks_nobody(sqlite_engine, sqlite_world, programme) -> None:
    w = sqlite_world
    handovers(sqlite_engine, programme, w)
    lan = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", chat_id="z-lan", linked_at=local(2021, 11, 1))
    minh = link(sqlite_engine, staff_id=w.teacher_a, channel="zalo", chat_id="z-minh", linked_at=local(2021, 11, 1))
    zalo = RecordingSender("zalo")
    zalo.fail[lan] = zalo.fail[minh] = INTERNAL
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    deliverer = Deliverer(
        db=sqlite_engine, programme=programme, clock=clock, senders={"zalo": zalo}, mailer=RecordingMailer()
    )
    seen = await run_until_settled(deliverer, sqlite_engine, w, clock)
    assert all(mark is None for _, _, mark in seen)
    assert blocked(sqlite_engine, w.principal_a) == {"zalo": None} and blocked(sqlite_engine, w.teacher_a) == {
        "zalo": None
    }


async def test_short_trouble_is_never_evidence(sqlite_engine, sqlite_world, programme) -> None:
    """Even at the last attempt, less than ``unreachable_after`` of failures marks nothing."""
    w = sqlite_world
    handovers(sqlite_engine, programme, w)
    lan = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", chat_id="z-lan", linked_at=local(2021, 11, 1))
    link(sqlite_engine, staff_id=w.teacher_a, channel="zalo", chat_id="z-minh", linked_at=local(2021, 11, 1))
    zalo = RecordingSender("zalo")
    zalo.fail[lan] = INTERNAL
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    deliverer = Deliverer(
        db=sqlite_engine,
        programme=programme,
        clock=clock,
        senders={"zalo": zalo},
        max_attempts=3,
        unreachable_after=timedelta(hours=6),
    )
    seen = await run_until_settled(deliverer, sqlite_engine, w, clock)
    assert seen[-1][1] == NotificationStatus.FAILED and all(mark is None for _, _, mark in seen)


async def test_writing_again_lifts_the_mark_on_zalo_and_on_telegram(db_engine, world, programme, clock) -> None:
    """Runs on SQLite and PostgreSQL: the PostgreSQL fast path reads the sender in one combined statement."""
    w = world
    engine = ConversationEngine(db=db_engine, programme=programme, clock=clock)
    zalo = await Chat.linked(engine, w.phones["principal_a"], channel="zalo", user_id="z-lan")
    telegram = await Chat.linked(engine, w.phones["teacher_a"], channel="telegram", user_id="7001")
    other = await Chat.linked(engine, w.phones["teacher_a2"], channel="zalo", user_id="z-ha")
    with session_scope(db_engine) as s:
        for ident in s.exec(select(ChatIdentity)):
            ident.blocked_at = clock.now() - timedelta(days=1)
    await zalo.say("/menu")
    await telegram.say("/menu")
    assert blocked(db_engine, w.principal_a) == {"zalo": None}
    assert blocked(db_engine, w.teacher_a) == {"telegram": None}
    assert blocked(db_engine, w.teacher_a2)["zalo"] is not None  # only those who wrote
    # A redelivered message (already processed) changes nothing, and the mark stays lifted.
    await other.send(text="/menu", message_id="dup")
    await other.send(text="/menu", message_id="dup")
    assert blocked(db_engine, w.teacher_a2) == {"zalo": None}


async def test_a_lifted_mark_makes_the_person_reachable_for_notifications_again(
    sqlite_engine, sqlite_world, programme, clock
) -> None:
    """The deliverer skips marked chats; once the person wrote, their chat is where messages go again."""
    w = sqlite_world
    engine = ConversationEngine(db=sqlite_engine, programme=programme, clock=clock)
    lan = await Chat.linked(engine, w.phones["principal_a"], channel="zalo", user_id="z-lan")
    with session_scope(sqlite_engine) as s:
        s.exec(select(ChatIdentity).where(ChatIdentity.external_id == "z-lan")).one().blocked_at = clock.now()

    def chats() -> list[str]:
        with session_scope(sqlite_engine) as s:
            _, identities = recipients(s, [SimpleNamespace(recipient_id=w.principal_a)])
            return [i.chat_id for i in identities.get(w.principal_a, [])]

    assert chats() == []
    await lan.say("xin chào")
    assert chats() == ["z-lan"]
