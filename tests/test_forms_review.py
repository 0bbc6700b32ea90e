"""/duyet and /chotbaocao through the engine: one by one, reasons, the teacher told, role and school checks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session

from conversations.forms import registry
from core.vocabulary import ReviewStatus
from storage import students
from storage.db import session_scope
from storage.models import School, Staff, Student
from tests.engine_helpers import Chat, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


def _seed(db, world, clock, n: int, *, teacher: str = "teacher_a") -> list[int]:
    ids = []
    with session_scope(db) as s:
        actor = s.get(Staff, getattr(world, teacher))
        for i in range(n):
            st = students.register_student(
                s,
                actor=actor,
                now=clock.now() + timedelta(minutes=i),
                full_name=f"Nguyễn Văn {'ABCDE'[i]}",
                birth_date=date(2012, 1, 1 + i),
                class_name="4A",
                code=f"40000000{i:02d}",
                gender="male",
                category="poor",
                need="device",
            )
            ids.append(st.id)
    return ids


def _status(db, sid: int) -> Student:
    with Session(db) as s:
        return s.get(Student, sid)


async def test_review_one_by_one_with_reasons_and_the_teacher_told(eng, sqlite_engine, sqlite_world, clock) -> None:
    a, b, c = _seed(sqlite_engine, sqlite_world, clock, 3)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    if "csdl" in registry().forms:
        await principal.tap("Đăng ký chờ duyệt")
    assert "Nguyễn Văn A" in principal.text and "còn 3" in principal.text and "Trần Văn Minh" in principal.text
    await principal.tap("Duyệt")
    assert "Đã duyệt em Nguyễn Văn A" in principal.text and "Nguyễn Văn B" in principal.text
    [note] = principal.notifications
    assert note.chat_id == teacher.chat_id and "đã duyệt" in note.text and "Nguyễn Văn A" in note.text
    await principal.tap("Từ chối")
    assert "Lý do từ chối" in principal.text
    await principal.say("Gia đình đã có máy <tính>")
    assert "Đã từ chối em Nguyễn Văn B" in principal.text
    [note] = principal.notifications
    assert "Gia đình đã có máy &lt;tính&gt;" in note.text and "/cuatoi" in note.text
    await principal.tap("Để sau")
    assert "Đã xem hết" in principal.text and "Còn 1" in principal.text
    assert _status(sqlite_engine, a).status == ReviewStatus.APPROVED
    b_row = _status(sqlite_engine, b)
    assert b_row.status == ReviewStatus.REJECTED and b_row.reject_reason == "Gia đình đã có máy <tính>"
    assert _status(sqlite_engine, c).status == ReviewStatus.PENDING
    await principal.say("/duyet")
    if "csdl" in registry().forms:
        await principal.tap("Đăng ký chờ duyệt")
    await principal.say("dung")  # typed "Dừng" without accents
    assert "Đã dừng" in principal.text and "Còn 1" in principal.text


async def test_nothing_to_review(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    if "csdl" in registry().forms:
        assert principal.has_option("CSDL")
    else:
        assert "không có gì chờ" in principal.text.lower()


async def test_teacher_cannot_review(eng, sqlite_engine, sqlite_world, clock) -> None:
    _seed(sqlite_engine, sqlite_world, clock, 1)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    for cmd in ("/duyet", "/chotbaocao", "/xuatfile"):
        await teacher.say(cmd)
        assert "không dành cho giáo viên" in teacher.text
    await teacher.tap_key("/duyet")  # a forged menu button
    assert "không dành cho giáo viên" in teacher.text


async def test_principal_of_school_b_never_sees_school_a(eng, sqlite_engine, sqlite_world, clock) -> None:
    (sid,) = _seed(sqlite_engine, sqlite_world, clock, 1)
    principal_b = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    await principal_b.say("/duyet")
    assert "Nguyễn Văn A" not in principal_b.text
    await principal_b.say("/cuatoi")
    assert "Nguyễn Văn A" not in principal_b.text
    # A hand-made form state pointing at school A's student is refused by the service, not trusted.
    from storage.scope import Scope

    with Session(sqlite_engine) as s:
        pb = s.get(Staff, sqlite_world.principal_b)
        with pytest.raises(students.NotAllowed):
            students.approve(s, actor=pb, student_id=sid, now=clock.now())
        assert not Scope.for_staff(pb).allows(s.get(School, sqlite_world.school_a))
    assert _status(sqlite_engine, sid).status == ReviewStatus.PENDING


async def test_withdrawal_request_is_confirmed_in_duyet(eng, sqlite_engine, sqlite_world, clock) -> None:
    (sid,) = _seed(sqlite_engine, sqlite_world, clock, 1)
    with session_scope(sqlite_engine) as s:
        students.approve(s, actor=s.get(Staff, sqlite_world.principal_a), student_id=sid, now=clock.now())
        students.withdraw(
            s, actor=s.get(Staff, sqlite_world.teacher_a), student_id=sid, reason="chuyển trường", now=clock.now()
        )
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("Yêu cầu rút hồ sơ (1)")
    assert "Yêu cầu rút hồ sơ" in principal.text and "Nguyễn Văn A" in principal.text
    await principal.tap("Đồng ý rút")
    assert "Không còn yêu cầu rút" in principal.text
    assert _status(sqlite_engine, sid).status == ReviewStatus.WITHDRAWN


async def test_submit_needs_report(eng, sqlite_engine, sqlite_world, clock) -> None:
    ids = _seed(sqlite_engine, sqlite_world, clock, 3)
    with session_scope(sqlite_engine) as s:
        for sid in ids[:2]:
            students.approve(s, actor=s.get(Staff, sqlite_world.principal_a), student_id=sid, now=clock.now())
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/chotbaocao")
    assert "đã duyệt: 2" in principal.text and "Hộ nghèo: 2" in principal.text and "Máy tính: 2" in principal.text
    assert "Còn 1 đăng ký chưa duyệt" in principal.text and "20/11/2021" in principal.text
    await principal.tap("Chưa")
    assert "Chưa chốt" in principal.text
    await principal.say("/chotbaocao")
    await principal.say("co")
    assert "Đã chốt báo cáo nhu cầu lúc 08:00 17/11/2021" in principal.text and "sau hạn)" not in principal.text
    await principal.say("/chotbaocao")
    assert "đã chốt báo cáo nhu cầu lúc" in principal.text
    with Session(sqlite_engine) as s:
        assert s.get(School, sqlite_world.school_a).needs_report_submitted_by == sqlite_world.principal_a


async def test_csdl_entry_is_offered_only_when_that_form_exists(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    assert principal.has_option("CSDL") == ("csdl" in registry().forms)
