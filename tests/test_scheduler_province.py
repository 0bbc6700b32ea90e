"""The province level in the scheduler: a district that leaves an item late for N days (programme file
``province_escalation_days``) is escalated to the province officers once per episode; the province officers
get a morning digest of every district; districts outside a province are never reported to it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core.vocabulary import Role
from scheduler.sweep import sweep
from storage.db import session_scope
from storage.models import District, Province, Staff
from tests.factories import add_handover, link, local, rows, submit_report


def add_province(engine, world, *, now) -> int:
    with session_scope(engine) as s:
        bd = Province(code="BD", name="Tỉnh Bình Dương")
        s.add(bd)
        s.flush()
        s.get(District, world.district_id).province_id = bd.id  # Dĩ An stays outside
        officer = Staff(
            full_name="Trịnh Thanh Sơn",
            phone="+842743822001",
            email="son@sgd.example",
            role=Role.PROVINCE_OFFICER,
            province_id=bd.id,
            created_at=now,
            updated_at=now,
        )
        s.add(officer)
        s.flush()
        return officer.id


def province_candidates(result):
    return [c for c in result.created if c.rule == "province"]


def test_district_late_for_n_days_escalates_to_the_province_once(db_engine, world, programme):
    w = world
    officer = add_province(db_engine, w, now=local(2021, 11, 1))
    for school in (w.school_a, w.school_b):
        submit_report(db_engine, school_id=school, at=local(2021, 11, 18, 9))  # no needs-report lateness here
    submit_report(db_engine, school_id=w.school_other, at=local(2021, 11, 18, 9))
    add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),  # due end of 19/11: late from 20/11 00:00
        created_at=local(2021, 11, 18, 9),
        name="Trần Thị Bích",
    )
    add_handover(
        db_engine,
        programme,
        school_id=w.school_other,
        recorded_by=w.principal_other,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 9),
    )
    assert programme.deadlines.province_escalation_days == 3
    # Late 2 days on 22/11: the district hears of it (csdl rule), the province not yet.
    assert not province_candidates(sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7)))
    # 3 days late on 23/11 00:00, reported at the morning hour.
    assert not province_candidates(sweep(db_engine, programme=programme, now=local(2021, 11, 23, 6)))
    got = province_candidates(sweep(db_engine, programme=programme, now=local(2021, 11, 23, 7)))
    assert [(c.recipient.staff_id, c.subject, c.stage, c.escalation) for c in got] == [
        (officer, f"district:{w.district_id}", "late:2021-11-20", True)
    ]
    line = got[0].line
    assert "Thành phố Thủ Dầu Một" in line and "1 việc trễ quá 3 ngày" in line and "20/11/2021" in line
    assert "Phú Hòa 1" in line and "Lê Minh Tiến" in line
    assert "Dĩ An" not in line  # not in the province: its officer is never told about it
    # The same episode: not again on the following days.
    for day in (24, 25, 30):
        assert not province_candidates(sweep(db_engine, programme=programme, now=local(2021, 11, day, 9)))
    assert len(rows(db_engine, rule="province")) == 1


def test_no_province_officer_no_escalation(db_engine, world, programme):
    w = world
    add_province(db_engine, w, now=local(2021, 11, 1))
    with session_scope(db_engine) as s:
        for st in s.exec(select(Staff).where(Staff.role == Role.PROVINCE_OFFICER)).scalars():
            st.active = False
    add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 10),
        created_at=local(2021, 11, 10, 9),
    )
    assert not province_candidates(sweep(db_engine, programme=programme, now=local(2021, 11, 25, 7)))


def test_province_digest_every_morning(db_engine, world, programme):
    w = world
    officer = add_province(db_engine, w, now=local(2021, 11, 1))
    link(db_engine, staff_id=officer, linked_at=local(2021, 11, 1))
    submit_report(db_engine, school_id=w.school_b, at=local(2021, 11, 19, 10))
    add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 9),
    )
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7))
    digests = {c.subject: c for c in r.created if c.rule == "digest"}
    province = [c for k, c in digests.items() if k.startswith("province:")]
    assert [c.recipient.staff_id for c in province] == [officer]
    text = province[0].line
    assert "Tỉnh Bình Dương" in text and "1 quận/huyện, 2 trường" in text
    assert "Thành phố Thủ Dầu Một</b>: 2 trường" in text and "trễ CSDL 1 (1 trường)" in text and "báo cáo 1/2" in text
    assert "Dĩ An" not in text
    assert not [
        c for c in sweep(db_engine, programme=programme, now=local(2021, 11, 22, 7, 5)).created if c.rule == "digest"
    ]
