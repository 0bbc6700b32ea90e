"""Delivery from the outbox: grouping, fallback between channels, retries, e-mail, quiet hours, crash safety.

What depends on the database (recording, grouping, crash safety, the e-mail copy) runs on SQLite and
PostgreSQL; the channel logic runs on SQLite only, to keep the suite fast."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from core.clock import FixedClock
from core.ports import DeliveryError, RetryLater, Unreachable
from core.vocabulary import NotificationStatus
from scheduler.delivery import Deliverer
from scheduler.sweep import sweep
from storage.db import make_engine, session_scope
from storage.models import ChatIdentity, Staff
from tests.factories import add_handover, link, local, rows, submit_report
from tests.fakes.recording import RecordingMailer, RecordingSender


@pytest.fixture
def tg():
    return RecordingSender("telegram")


@pytest.fixture
def zalo():
    return RecordingSender("zalo")


@pytest.fixture
def mailer():
    return RecordingMailer()


def identities(session, staff_id: int) -> list[ChatIdentity]:
    return list(session.exec(select(ChatIdentity).where(ChatIdentity.staff_id == staff_id)))


def deliverer(engine, programme, clock, *senders, mailer=None, **kw) -> Deliverer:
    return Deliverer(
        db=engine, programme=programme, clock=clock, senders={s.channel: s for s in senders}, mailer=mailer, **kw
    )


def three_handovers(engine, programme, w):
    for name in ("Trần Thị Bích", "Lê Văn Cường", "Đỗ Thị Dung"):
        add_handover(
            engine,
            programme,
            school_id=w.school_a,
            recorded_by=w.teacher_a,
            handed_over_on=date(2021, 11, 17),
            created_at=local(2021, 11, 17, 9),
            name=name,
        )
    submit_report(engine, school_id=w.school_a, at=local(2021, 11, 16))  # keep the needs-report rule quiet


async def test_items_for_one_person_go_out_as_one_message(db_engine, world, programme, tg, zalo, mailer):
    w = world
    three_handovers(db_engine, programme, w)
    chat = link(db_engine, staff_id=w.principal_a, linked_at=local(2021, 11, 1))
    teacher_chat = link(db_engine, staff_id=w.teacher_a, channel="zalo", linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(db_engine, programme=programme, now=clock.now())
    report = await deliverer(db_engine, programme, clock, tg, zalo, mailer=mailer).deliver_due()

    [text] = [t for t in tg.texts(chat) if "CSDL" in t]
    assert "3 bàn giao cần cập nhật CSDL ngành" in text
    assert all(n in text for n in ("Trần Thị Bích", "Lê Văn Cường", "Đỗ Thị Dung"))
    assert "/duyet" in text and "csdl.moet.gov.vn" in text
    assert len(zalo.texts(teacher_chat)) == 1  # the teacher who recorded them, on their own channel
    csdl = rows(db_engine, rule="csdl")
    assert {(r.status, r.channels_done, r.attempts) for r in csdl} == {
        (NotificationStatus.SENT, "telegram", 1),
        (NotificationStatus.SENT, "zalo", 1),
    }
    assert all(r.sent_at == clock.now() for r in csdl)
    assert {g.status for g in report.groups if g.rule == "csdl"} == {"sent"}
    # Delivered once: a second pass and a second sweep send nothing more.
    sweep(db_engine, programme=programme, now=clock.now())
    again = await deliverer(db_engine, programme, clock, tg, zalo, mailer=mailer).deliver_due()
    assert again.groups == [] and len(tg.sent) == 1


async def test_blocked_chat_falls_back_to_the_next_channel(sqlite_engine, sqlite_world, programme, tg, zalo):
    w = sqlite_world
    three_handovers(sqlite_engine, programme, w)
    zalo_chat = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", linked_at=local(2021, 11, 1))
    tg_chat = link(sqlite_engine, staff_id=w.principal_a, linked_at=local(2021, 11, 5))  # newer: tried first
    tg.fail[tg_chat] = Unreachable("Telegram: Forbidden: bot was blocked by the user")
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg, zalo).deliver_due()

    assert tg.attempts == [tg_chat] and len(zalo.texts(zalo_chat)) == 1
    [row] = [r for r in rows(sqlite_engine, rule="csdl") if r.recipient_id == w.principal_a][:1]
    assert row.status == NotificationStatus.SENT and row.channels_done == "zalo"
    assert "bot was blocked" in row.last_error
    with session_scope(sqlite_engine) as s:
        blocked = {i.channel: i.blocked_at for i in identities(s, w.principal_a)}
    assert blocked == {"telegram": clock.now(), "zalo": None}


async def test_person_with_no_channel_and_no_email_is_reported_to_the_district(db_engine, world, programme, tg, mailer):
    """The teacher has no chat and no e-mail: the reminder fails, and the district contact is told so."""
    w = world
    three_handovers(db_engine, programme, w)
    link(db_engine, staff_id=w.principal_a, linked_at=local(2021, 11, 1))
    officer_chat = link(db_engine, staff_id=w.officer, linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(db_engine, programme=programme, now=clock.now())
    await deliverer(db_engine, programme, clock, tg, mailer=mailer).deliver_due()

    teacher_rows = rows(db_engine, recipient_id=w.teacher_a, rule="csdl")
    assert {r.status for r in teacher_rows} == {NotificationStatus.FAILED}
    assert "không có kênh liên lạc" in teacher_rows[0].last_error
    told = rows(db_engine, rule="undeliverable", recipient_id=w.officer)
    assert len(told) == 3  # one per reminder the teacher did not get (and the other district's are its own)
    assert {r.status for r in told} == {NotificationStatus.SENT}
    [text] = [t for t in tg.texts(officer_chat) if "Không gửi được" in t]
    assert "Trần Văn Minh" in text and "0901 000 002" in text and "Trường Tiểu học Phú Hòa 1" in text
    # ... and by e-mail, as every message to the district contact.
    assert "leminhtien@tptdm.edu.vn" in [to for to, subject, _ in mailer.sent if "Không gửi được" in subject]


async def test_person_without_chat_gets_their_roster_email(sqlite_engine, sqlite_world, programme, tg, mailer):
    three_handovers(sqlite_engine, programme, sqlite_world)
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg, mailer=mailer).deliver_due()
    [(to, subject, body)] = [m for m in mailer.sent if m[0] == "lan@phuhoa1.example"]
    assert "CSDL ngành" in subject and "Lê Văn Cường" in body and "<b>" not in body
    [row] = rows(sqlite_engine, recipient_id=sqlite_world.principal_a, rule="csdl")[:1]
    assert row.status == NotificationStatus.SENT and row.channels_done == "email"


async def test_retry_later_backs_off_and_honours_retry_after(sqlite_engine, sqlite_world, programme, tg):
    three_handovers(sqlite_engine, programme, sqlite_world)
    chat = link(sqlite_engine, staff_id=sqlite_world.principal_a, linked_at=local(2021, 11, 1))
    tg.fail[chat] = RetryLater("Telegram 429: retry after 300 s", retry_after=300)
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    d = deliverer(sqlite_engine, programme, clock, tg)
    report = await d.deliver_due()
    assert report.rows_retrying == 3
    [row] = rows(sqlite_engine, recipient_id=sqlite_world.principal_a, rule="csdl")[:1]
    assert (row.status, row.attempts) == (NotificationStatus.PENDING, 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=300)  # retry_after beats the 60 s backoff

    clock.advance(timedelta(seconds=299))
    assert (await d.deliver_due()).groups == []  # not before the platform said
    del tg.fail[chat]
    clock.advance(timedelta(seconds=1))
    await d.deliver_due()
    [row] = rows(sqlite_engine, recipient_id=sqlite_world.principal_a, rule="csdl")[:1]
    assert (row.status, row.attempts) == (NotificationStatus.SENT, 2)
    assert len(tg.texts(chat)) == 1


async def test_gives_up_after_max_attempts_and_the_digest_says_so(sqlite_engine, sqlite_world, programme, tg):
    three_handovers(sqlite_engine, programme, sqlite_world)
    chat = link(sqlite_engine, staff_id=sqlite_world.principal_a, linked_at=local(2021, 11, 1))
    tg.fail[chat] = RetryLater("Telegram: Bad Gateway")
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    d = deliverer(sqlite_engine, programme, clock, tg, max_attempts=3)
    delays = []
    for _ in range(3):
        await d.deliver_due()
        [row] = rows(sqlite_engine, recipient_id=sqlite_world.principal_a, rule="csdl")[:1]
        delays.append(row.next_attempt_at - clock.now())
        clock.set(row.next_attempt_at)
    assert delays[:2] == [timedelta(minutes=1), timedelta(minutes=2)]  # exponential backoff
    assert row.status == NotificationStatus.FAILED and row.attempts == 3 and "Bad Gateway" in row.last_error
    r = sweep(sqlite_engine, programme=programme, now=local(2021, 11, 19, 7))
    digest = next(c.line for c in r.created if c.rule == "digest" and c.recipient.staff_id == sqlite_world.officer)
    assert "Thông báo không gửi được (24 giờ qua)" in digest
    assert "• Nguyễn Thị Lan (hiệu trưởng): Cập nhật CSDL ngành — telegram: Telegram: Bad Gateway" in digest


async def test_smtp_down_the_chat_copy_still_goes_and_email_follows(db_engine, world, programme, tg, mailer):
    three_handovers(db_engine, programme, world)
    officer_chat = link(db_engine, staff_id=world.officer, linked_at=local(2021, 11, 1))
    mailer.down = True
    clock = FixedClock(local(2021, 11, 19, 7))  # past due: escalations to the district contact
    sweep(db_engine, programme=programme, now=clock.now())
    d = deliverer(db_engine, programme, clock, tg, mailer=mailer)
    await d.deliver_due()
    late = rows(db_engine, rule="csdl", stage="late")
    assert {(r.status, r.channels_done) for r in late} == {(NotificationStatus.PENDING, "telegram")}
    assert "SMTP" in late[0].last_error
    assert len([t for t in tg.texts(officer_chat) if "vượt cấp: 3 bàn giao" in t]) == 1

    mailer.down = False
    clock.advance(timedelta(minutes=1))
    await d.deliver_due()
    late = rows(db_engine, rule="csdl", stage="late")
    assert {(r.status, r.channels_done) for r in late} == {(NotificationStatus.SENT, "email,telegram")}
    assert len([t for t in tg.texts(officer_chat) if "vượt cấp: 3 bàn giao" in t]) == 1  # not repeated
    assert [to for to, s, _ in mailer.sent if "CSDL" in s] == ["leminhtien@tptdm.edu.vn"]


async def test_contact_not_in_the_roster_still_gets_email(sqlite_engine, sqlite_world, programme, tg, mailer):
    with session_scope(sqlite_engine) as s:
        s.get(Staff, sqlite_world.officer).phone = "+84913999999"  # the roster's officer is someone else now
    three_handovers(sqlite_engine, programme, sqlite_world)
    clock = FixedClock(local(2021, 11, 19, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg, mailer=mailer).deliver_due()
    late = rows(sqlite_engine, rule="csdl", stage="late")
    assert {(r.recipient_id, r.email, r.status) for r in late} == {
        (None, "leminhtien@tptdm.edu.vn", NotificationStatus.SENT)
    }
    assert any("quá hạn cập nhật CSDL" in subject for _, subject, _ in mailer.sent)


async def test_quiet_hours_hold_delivery_until_morning(sqlite_engine, sqlite_world, programme, tg):
    three_handovers(sqlite_engine, programme, sqlite_world)
    chat = link(sqlite_engine, staff_id=sqlite_world.officer, linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 19, 0, 5))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    d = deliverer(sqlite_engine, programme, clock, tg)
    assert (await d.deliver_due()).groups == [] and tg.sent == []
    clock.set(local(2021, 11, 19, 6, 30))
    await d.deliver_due()
    assert len(tg.texts(chat)) == 1


async def test_killed_between_finding_and_delivering_nothing_lost_nothing_repeated(
    db_url, world, programme, tg, db_engine
):
    three_handovers(db_engine, programme, world)
    chat = link(db_engine, staff_id=world.principal_a, linked_at=local(2021, 11, 1))
    now = local(2021, 11, 18, 7)
    first = make_engine(db_url)  # "process" 1: finds and records, then dies before delivering
    found = sweep(first, programme=programme, now=now)
    first.dispose()
    assert found.created

    second = make_engine(db_url)  # "process" 2, after the restart
    try:
        again = sweep(second, programme=programme, now=now + timedelta(minutes=5))
        assert again.created == []
        await deliverer(second, programme, FixedClock(now + timedelta(minutes=5)), tg).deliver_due()
        await deliverer(second, programme, FixedClock(now + timedelta(minutes=10)), tg).deliver_due()
    finally:
        second.dispose()
    assert len([t for t in tg.texts(chat) if "CSDL" in t]) == 1
    assert {r.status for r in rows(db_engine, rule="csdl")} == {NotificationStatus.SENT, NotificationStatus.FAILED}


async def test_a_bad_request_tries_the_next_channel_without_blocking(sqlite_engine, sqlite_world, programme, tg, zalo):
    w = sqlite_world
    three_handovers(sqlite_engine, programme, w)
    tg_chat = link(sqlite_engine, staff_id=w.principal_a, linked_at=local(2021, 11, 5))
    zalo_chat = link(sqlite_engine, staff_id=w.principal_a, channel="zalo", linked_at=local(2021, 11, 1))
    tg.fail[tg_chat] = DeliveryError("Telegram rejected the message: can't parse entities")
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg, zalo).deliver_due()
    assert len(zalo.texts(zalo_chat)) == 1
    with session_scope(sqlite_engine) as s:
        assert all(i.blocked_at is None for i in identities(s, w.principal_a))


async def test_linked_only_on_a_channel_this_process_does_not_serve_waits(sqlite_engine, sqlite_world, programme, tg):
    """A Telegram-only process must not give up on a principal linked on Zalo: the row waits (and is retried,
    and reported in the digest if it never goes), instead of being failed and escalated at once."""
    w = sqlite_world
    three_handovers(sqlite_engine, programme, w)
    with session_scope(sqlite_engine) as s:
        s.get(Staff, w.principal_a).email = None
    link(sqlite_engine, staff_id=w.principal_a, channel="zalo", linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg).deliver_due()
    [row] = rows(sqlite_engine, rule="csdl", recipient_id=w.principal_a)[:1]
    assert row.status == NotificationStatus.PENDING and "zalo: kênh chưa được cấu hình" in row.last_error
    assert not [r for r in rows(sqlite_engine, rule="undeliverable") if f"notification:{row.id}" == r.subject]


async def test_the_digest_comes_with_the_district_chart(sqlite_engine, sqlite_world, programme, tg, mailer):
    three_handovers(sqlite_engine, programme, sqlite_world)
    officer_chat = link(sqlite_engine, staff_id=sqlite_world.officer, linked_at=local(2021, 11, 1))
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    await deliverer(sqlite_engine, programme, clock, tg, mailer=mailer).deliver_due()
    [digest] = [t for t in tg.texts(officer_chat) if "Bản tin ngày 18/11/2021" in t]
    [(chat, png)] = tg.photos
    assert chat == officer_chat and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/tonghop" in digest
    [row] = rows(sqlite_engine, rule="digest", recipient_id=sqlite_world.officer)
    assert row.status == NotificationStatus.SENT and row.last_error is None


async def test_a_chart_that_fails_is_recorded_and_the_digest_is_not_repeated(
    sqlite_engine, sqlite_world, programme, tg, mailer
):
    officer_chat = link(sqlite_engine, staff_id=sqlite_world.officer, linked_at=local(2021, 11, 1))
    tg.fail_photos = RetryLater("Telegram: Bad Gateway")
    clock = FixedClock(local(2021, 11, 18, 7))
    sweep(sqlite_engine, programme=programme, now=clock.now())
    d = deliverer(sqlite_engine, programme, clock, tg, mailer=mailer)
    await d.deliver_due()
    [row] = rows(sqlite_engine, rule="digest", recipient_id=sqlite_world.officer)
    assert row.status == NotificationStatus.SENT and "biểu đồ" in row.last_error
    clock.set(local(2021, 11, 18, 9))
    await d.deliver_due()
    assert len([t for t in tg.texts(officer_chat) if "Bản tin" in t]) == 1 and tg.photos == []
