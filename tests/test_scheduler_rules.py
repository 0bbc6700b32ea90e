"""Every rule and stage, with the clock set by hand: what the sweep records, for whom, and what it says."""

from __future__ import annotations

from datetime import date, timedelta

from core.vocabulary import NotificationStatus
from scheduler.sweep import sweep
from storage.db import session_scope
from storage.models import Flag, Handover, School, Staff
from tests.factories import add_batch, add_handover, add_student, link, local, rows, submit_report


def keys(result) -> set[str]:
    return {c.key for c in result.created}


def by_key(engine) -> dict:
    return {r.key: r for r in rows(engine)}


# --- needs report ---------------------------------------------------------------------------------------------


def test_needs_report_ladder_then_escalations(db_engine, world, programme):
    w = world
    submit_report(db_engine, school_id=w.school_b, at=local(2021, 11, 16, 15))
    assert sweep(db_engine, programme=programme, now=local(2021, 11, 17, 6, 59)).created == []

    r = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7, 0))
    needs = {c.key for c in r.created if c.rule == "needs_report"}
    # Schools without a submitted report, to their principals; school B submitted, so nothing for it.
    assert needs == {
        f"needs_report:school:{w.school_a}:s{w.principal_a}:remind:3",
        f"needs_report:school:{w.school_other}:s{w.principal_other}:remind:3",
    }
    text = next(c.line for c in r.created if c.recipient.staff_id == w.principal_a)
    assert "Trường Tiểu học Phú Hòa 1" in text and "hết ngày 20/11/2021" in text and "còn 3 ngày" in text

    assert {
        c.stage
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 19, 7)).created
        if c.rule == "needs_report"
    } == {"remind:1"}
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 20, 7))
    assert "hôm nay là ngày cuối" in next(c.line for c in r.created if c.recipient.staff_id == w.principal_a)

    # The morning after the deadline: one message per district listing every school that missed it.
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 21, 7))
    late = [c for c in r.created if c.rule == "needs_report"]
    assert {(c.subject, c.recipient.staff_id) for c in late} == {
        (f"district:{w.district_id}", w.officer),
        (f"district:{w.other_district_id}", w.other_officer),
    }
    tdm = next(c for c in late if c.recipient.staff_id == w.officer)
    assert tdm.escalation and tdm.recipient.email == "leminhtien@tptdm.edu.vn"
    assert "Trường Tiểu học Phú Hòa 1" in tdm.line and "Nguyễn Thị Lan, 0901 000 001" in tdm.line
    assert "Chu Văn An" not in tdm.line  # submitted on time

    # Then one per school per day late, naming the principal and their phone.
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7))
    day2 = [c for c in r.created if c.rule == "needs_report"]
    assert {c.key for c in day2} == {
        f"needs_report:school:{w.school_a}:s{w.officer}:late:2021-11-22",
        f"needs_report:school:{w.school_other}:s{w.other_officer}:late:2021-11-22",
    }
    assert "trễ 2 ngày" in next(c.line for c in day2 if c.recipient.staff_id == w.officer)
    submit_report(db_engine, school_id=w.school_a, at=local(2021, 11, 22, 9))
    assert [
        c.subject
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 23, 7)).created
        if c.rule == "needs_report"
    ] == [f"school:{w.school_other}"]


def test_catch_up_sends_the_current_stage_and_skips_the_missed_one(db_engine, world, programme):
    """Down from 16/11 to 19/11 08:00: the 3-days-before reminder is not sent late; the 1-day one is."""
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 19, 8))
    stages = {c.stage for c in r.created if c.rule == "needs_report"}
    assert stages == {"remind:1"}
    assert not [x for x in rows(db_engine) if x.stage == "remind:3"]


def test_a_reminder_that_could_only_go_out_the_next_day_is_dropped(db_engine, world, programme):
    # 00:05 on 19/11: the current stage is still "3 days before" (17/11), but its day is over.
    assert not [
        c
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 19, 0, 5)).created
        if c.rule == "needs_report"
    ]
    # 22:00 on 19/11: the "1 day before" reminder is current, but quiet hours would hold it until tomorrow,
    # when the "deadline day" reminder takes over. Nothing is recorded tonight ...
    assert not [
        c
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 19, 22)).created
        if c.rule == "needs_report"
    ]
    # ... and the morning brings exactly one reminder.
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 20, 7))
    assert {c.stage for c in r.created if c.rule == "needs_report"} == {"remind:0"}


def test_a_pending_reminder_is_superseded_by_the_next_stage(db_engine, world, programme):
    sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))  # recorded, never delivered (bot died)
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 19, 7))
    old = by_key(db_engine)[f"needs_report:school:{world.school_a}:s{world.principal_a}:remind:3"]
    assert old.status == NotificationStatus.SKIPPED and old.key in r.superseded
    new = by_key(db_engine)[f"needs_report:school:{world.school_a}:s{world.principal_a}:remind:1"]
    assert new.status == NotificationStatus.PENDING


def test_a_school_that_submits_has_its_pending_reminder_skipped(db_engine, world, programme):
    sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
    submit_report(db_engine, school_id=world.school_a, at=local(2021, 11, 17, 7, 3))
    sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7, 5))
    row = by_key(db_engine)[f"needs_report:school:{world.school_a}:s{world.principal_a}:remind:3"]
    assert row.status == NotificationStatus.SKIPPED


def test_school_without_principal_reminds_the_district_instead(db_engine, world, programme):
    with session_scope(db_engine) as s:
        s.get(Staff, world.principal_b).active = False
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
    c = next(c for c in r.created if c.subject == f"school:{world.school_b}")
    assert c.recipient.staff_id == world.officer
    assert "chưa có hiệu trưởng" in c.line


# --- sector-database update ----------------------------------------------------------------------------------


def test_csdl_reminder_then_one_escalation(db_engine, world, programme):
    w = world
    hid = add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
        name="Trần Thị Bích",
    )
    assert not [
        c for c in sweep(db_engine, programme=programme, now=local(2021, 11, 17, 12)).created if c.rule == "csdl"
    ]
    # Due by the end of 18/11: reminded that morning, principal and the teacher who recorded it.
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 18, 7))
    csdl = [c for c in r.created if c.rule == "csdl"]
    assert {c.recipient.staff_id for c in csdl} == {w.principal_a, w.teacher_a}
    assert {c.stage for c in csdl} == {"remind"}
    assert "Trần Thị Bích" in csdl[0].line and "hết ngày 18/11/2021" in csdl[0].line

    # Past due: one escalation to the district contact; the reminders still pending are superseded.
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 19, 0, 5))
    late = [c for c in r.created if c.rule == "csdl"]
    assert [(c.key, c.escalation) for c in late] == [(f"csdl:handover:{hid}:s{w.officer}:late", True)]
    assert "Nguyễn Thị Lan, 0901 000 001" in late[0].line
    assert {x.status for x in rows(db_engine, rule="csdl", stage="remind")} == {NotificationStatus.SKIPPED}
    # Escalated once: later sweeps find it again but record nothing new.
    for day in (19, 20, 25):
        assert not [
            c for c in sweep(db_engine, programme=programme, now=local(2021, 11, day, 9)).created if c.rule == "csdl"
        ]


def test_csdl_grace_and_confirmation(db_engine, world, programme):
    graced = programme.model_copy(
        update={"deadlines": programme.deadlines.model_copy(update={"handover_update_grace_hours": 6})}
    )
    hid = add_handover(
        db_engine,
        graced,
        school_id=world.school_b,
        recorded_by=world.principal_b,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    sweep(db_engine, programme=graced, now=local(2021, 11, 18, 7))
    # The principal recorded it: reminded once, not twice.
    assert len([x for x in rows(db_engine, rule="csdl")]) == 1
    r = sweep(db_engine, programme=graced, now=local(2021, 11, 19, 5, 59))
    assert not [c for c in r.created if c.stage == "late"]  # due at 00:00, plus 6 hours of grace
    with session_scope(db_engine) as s:
        s.get(Handover, hid).csdl_updated_at = local(2021, 11, 19, 6)
    r = sweep(db_engine, programme=graced, now=local(2021, 11, 19, 6, 1))
    assert not [c for c in r.created if c.rule == "csdl"]


# --- devices waiting, pending review ---------------------------------------------------------------------------


def test_devices_waiting_reminder_then_escalation(db_engine, world, programme):
    w = world
    bid = add_batch(
        db_engine,
        school_id=w.school_a,
        recorded_by=w.principal_a,
        received_on=date(2021, 11, 10),
        quantity=5,
        handed_over=2,
        created_at=local(2021, 11, 10, 9),
    )
    add_batch(
        db_engine,
        school_id=w.school_a,
        recorded_by=w.principal_a,
        received_on=date(2021, 11, 1),
        quantity=3,
        handed_over=3,
        created_at=local(2021, 11, 1, 9),
    )  # all handed over: never chased
    assert not [
        c
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 16, 9)).created
        if c.rule == "devices_waiting"
    ]
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
    [c] = [c for c in r.created if c.rule == "devices_waiting"]
    assert (c.subject, c.recipient.staff_id, c.stage) == (f"batch:{bid}", w.principal_a, "remind")
    assert "còn <b>3</b> máy" in c.line and "/bangiao" not in c.line  # the footer is added when sent
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 24, 7))
    [c] = [c for c in r.created if c.rule == "devices_waiting"]
    assert (c.recipient.staff_id, c.stage, c.escalation) == (w.officer, "late", True)
    assert "0901 000 001" in c.line


def test_pending_review_after_two_days_goes_out_the_next_morning(db_engine, world, programme):
    w = world
    old = add_student(
        db_engine,
        school_id=w.school_a,
        registered_by=w.teacher_a,
        created_at=local(2021, 11, 14, 10),
        status="pending",
        name="Lê Văn Cường",
    )
    add_student(
        db_engine,
        school_id=w.school_a,
        registered_by=w.teacher_a,
        created_at=local(2021, 11, 16, 10),
        status="pending",
        name="Đỗ Thị Dung",
    )
    # 2 days passed at 16/11 10:00; collected into the next morning's message, not sent mid-afternoon.
    assert not [
        c
        for c in sweep(db_engine, programme=programme, now=local(2021, 11, 16, 15)).created
        if c.rule == "pending_review"
    ]
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
    [c] = [c for c in r.created if c.rule == "pending_review"]
    assert c.subject == f"student:{old}" and "Lê Văn Cường" in c.line and c.recipient.staff_id == w.principal_a


# --- quiet hours, idempotence ------------------------------------------------------------------------------------


def test_quiet_hours_record_now_deliver_in_the_morning(db_engine, world, programme):
    add_handover(
        db_engine,
        programme,
        school_id=world.school_a,
        recorded_by=world.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    sweep(db_engine, programme=programme, now=local(2021, 11, 19, 0, 5))  # the escalation, found at night
    [late] = rows(db_engine, rule="csdl", stage="late")
    assert late.created_at == local(2021, 11, 19, 0, 5)
    assert late.next_attempt_at == local(2021, 11, 19, 6, 30)
    sweep(db_engine, programme=programme, now=local(2021, 11, 19, 22))
    assert all(
        r.next_attempt_at.astimezone(programme.tz).time() >= programme.reminders.quiet_end for r in rows(db_engine)
    )


def test_two_sweeps_at_the_same_moment_record_once(db_engine, world, programme):
    from storage.db import make_engine

    other = make_engine(db_engine.url.render_as_string(hide_password=False))
    try:
        first = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
        second = sweep(other, programme=programme, now=local(2021, 11, 17, 7))
    finally:
        other.dispose()
    assert first.created and second.created == []
    assert len(rows(db_engine)) == len(first.created) == len(second.found)


# --- the digest ---------------------------------------------------------------------------------------------------


def test_digest_every_morning_with_counts_late_items_and_flags(db_engine, world, programme):
    w = world
    submit_report(db_engine, school_id=w.school_b, at=local(2021, 11, 19, 10))
    add_student(
        db_engine, school_id=w.school_a, registered_by=w.teacher_a, created_at=local(2021, 11, 15, 10), status="pending"
    )
    hid = add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 9),
    )
    with session_scope(db_engine) as s:
        s.add(
            Flag(
                handover_id=hid,
                school_id=w.school_a,
                kind="photo_reused",
                params={"text": "ảnh trùng bàn giao #9"},
                created_at=local(2021, 11, 18, 9),
            )
        )
    link(db_engine, staff_id=w.officer, linked_at=local(2021, 11, 1))
    assert not [
        c for c in sweep(db_engine, programme=programme, now=local(2021, 11, 22, 6, 59)).created if c.rule == "digest"
    ]
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7))
    digest = {c.recipient.staff_id: c for c in r.created if c.rule == "digest"}
    assert set(digest) == {w.officer, w.other_officer}
    text = digest[w.officer].line
    assert digest[w.officer].recipient.email == "leminhtien@tptdm.edu.vn"
    assert "Bản tin ngày 22/11/2021" in text and "1/2 trường đã chốt" in text
    assert "Trường Tiểu học Phú Hòa 1</b>: 2 HS (1 chờ duyệt)" in text
    assert "CHƯA CHỐT, trễ hạn" in text and "đã chốt 19/11/2021" in text
    assert "1 bàn giao quá hạn cập nhật CSDL ngành" in text and "1 hồ sơ chờ duyệt quá 2 ngày" in text
    assert "Ảnh bị gắn cờ chưa xử lý: 1" in text and "ảnh đã dùng cho bàn giao khác" in text
    assert "Dĩ An" not in text  # another district's school
    # Once a day: the next sweep finds today's digest recorded and does not recompute it.
    assert not [
        c for c in sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7, 5)).created if c.rule == "digest"
    ]
    assert len(rows(db_engine, rule="digest")) == 2


def test_inactive_school_is_not_chased(db_engine, world, programme):
    with session_scope(db_engine) as s:
        s.get(School, world.school_a).active = False
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 17, 7))
    assert not [c for c in r.created if c.subject == f"school:{world.school_a}"]
    assert timedelta(0) <= r.now - local(2021, 11, 17, 7) < timedelta(seconds=1)


def test_a_person_who_chose_english_gets_english(sqlite_engine, sqlite_world, programme):
    from scheduler.rules import compose

    with session_scope(sqlite_engine) as s:
        s.get(Staff, sqlite_world.principal_a).language = "en"
    add_handover(
        sqlite_engine,
        programme,
        school_id=sqlite_world.school_a,
        recorded_by=sqlite_world.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    r = sweep(sqlite_engine, programme=programme, now=local(2021, 11, 18, 7))
    [c] = [c for c in r.created if c.rule == "csdl" and c.recipient.staff_id == sqlite_world.principal_a]
    assert "handed over 17/11/2021, update due by end of 18/11/2021" in c.line
    text = compose("csdl", c.stage, [c.line], lang="en", programme=programme)
    assert text.startswith("⏰ <b>Reminder: handovers to enter in the sector database (1)</b>")
    teacher = next(c for c in r.created if c.rule == "csdl" and c.recipient.staff_id == sqlite_world.teacher_a)
    assert "bàn giao 17/11/2021" in teacher.line  # everyone else: Vietnamese
