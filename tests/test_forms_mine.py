"""/cuatoi through the engine: own entries only, audited corrections, withdrawal (with the principal's consent
once approved)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.vocabulary import ReviewStatus
from storage import students
from storage.db import session_scope
from storage.models import AuditEvent, Staff, Student
from tests.engine_helpers import Chat, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


def _seed(db, world, clock, *, teacher="teacher_a", code="5000000001", name="Nguyễn Thị Mai") -> int:
    with session_scope(db) as s:
        return students.register_student(
            s,
            actor=s.get(Staff, getattr(world, teacher)),
            now=clock.now(),
            full_name=name,
            birth_date=date(2012, 3, 4),
            class_name="4A",
            code=code,
            gender="female",
            category="poor",
            need="device",
        ).id


def _row(db, sid: int) -> Student:
    with Session(db) as s:
        return s.get(Student, sid)


async def test_correct_a_field_with_audit(eng, sqlite_engine, sqlite_world, clock) -> None:
    sid = _seed(sqlite_engine, sqlite_world, clock)
    _seed(sqlite_engine, sqlite_world, clock, teacher="teacher_a2", code="5000000002", name="Lê Văn Tám")
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    assert teacher.has_option("Nguyễn Thị Mai") and not teacher.has_option("Lê Văn Tám")  # own entries only
    await teacher.tap("Nguyễn Thị Mai")
    assert "chờ duyệt" in teacher.text
    await teacher.tap("Sửa một mục")
    assert "Bạn muốn sửa mục nào" in teacher.text
    await teacher.tap("Lớp")
    await teacher.say("5C")
    assert "Kiểm tra lại" in teacher.text and "5C" in teacher.text and "Hộ nghèo" in teacher.text
    await teacher.tap("Sửa một mục")
    await teacher.tap("Mã định danh")
    await teacher.say("5000000002")  # another pupil's code
    assert "đã được đăng ký tại" in teacher.text
    await teacher.say("500000000123")
    await teacher.tap("Lưu")
    assert "Đã cập nhật" in teacher.text and "2 mục" in teacher.text
    row = _row(sqlite_engine, sid)
    assert row.class_name == "5C" and row.code == "500000000123"
    with Session(sqlite_engine) as s:
        events = (
            s.exec(select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_id == sid)).scalars().all()
        )
    assert {(tuple(e.before), e.actor_id) for e in events} == {
        (("class_name",), sqlite_world.teacher_a),
        (("code",), sqlite_world.teacher_a),
    }
    assert {e.after.get("class_name") or e.after.get("code") for e in events} == {"5C", "500000000123"}


async def test_nothing_changed(eng, sqlite_engine, sqlite_world, clock) -> None:
    _seed(sqlite_engine, sqlite_world, clock)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    await teacher.tap("Sửa một mục")
    await teacher.tap("Quay lại")
    await teacher.tap("Lưu")
    assert "Không có mục nào thay đổi" in teacher.text


async def test_withdraw_pending_and_request_for_approved(eng, sqlite_engine, sqlite_world, clock) -> None:
    pending = _seed(sqlite_engine, sqlite_world, clock)
    approved = _seed(sqlite_engine, sqlite_world, clock, code="5000000003", name="Trần Văn Hậu")
    with session_scope(sqlite_engine) as s:
        students.approve(s, actor=s.get(Staff, sqlite_world.principal_a), student_id=approved, now=clock.now())
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    await teacher.tap("Rút hồ sơ")
    await teacher.say("Đăng ký nhầm")
    assert "Rút hồ sơ em Nguyễn Thị Mai?" in teacher.text
    await teacher.tap("Có")
    assert "Đã rút hồ sơ" in teacher.text
    assert _row(sqlite_engine, pending).status == ReviewStatus.WITHDRAWN
    await teacher.say("/cuatoi")
    await teacher.tap("Trần Văn Hậu")
    await teacher.tap("Rút hồ sơ")
    await teacher.say("Chuyển trường")
    assert "cần hiệu trưởng đồng ý" in teacher.text
    await teacher.tap("Có")
    assert "Đã gửi yêu cầu rút" in teacher.text
    [note] = teacher.notifications
    assert note.chat_id == principal.chat_id and "Chuyển trường" in note.text and "/duyet" in note.text
    assert _row(sqlite_engine, approved).status == ReviewStatus.WITHDRAWING
    await teacher.say("/cuatoi")
    await teacher.tap("Trần Văn Hậu")
    assert "không còn thao tác" in teacher.text  # waiting for the principal


async def test_no_entries(eng, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    assert "chưa đăng ký học sinh nào" in teacher.text


async def test_rejected_entry_corrected_goes_back_to_review(eng, sqlite_engine, sqlite_world, clock) -> None:
    sid = _seed(sqlite_engine, sqlite_world, clock)
    with session_scope(sqlite_engine) as s:
        students.reject(
            s, actor=s.get(Staff, sqlite_world.principal_a), student_id=sid, reason="Sai ngày sinh", now=clock.now()
        )
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    assert "Sai ngày sinh" in teacher.text
    await teacher.tap("Sửa và gửi duyệt lại")
    await teacher.tap("Ngày sinh")
    await teacher.say("31/02/2012")
    assert "không có trên lịch" in teacher.text
    await teacher.say("04/03/2013")
    await teacher.tap("Lưu")
    row = _row(sqlite_engine, sid)
    assert row.birth_date == date(2013, 3, 4) and row.status == ReviewStatus.PENDING


async def test_correcting_the_group_to_other_hardship_asks_for_the_hardship(
    eng, sqlite_engine, sqlite_world, clock
) -> None:
    """Found by tests/test_forms_property.py: the correction form pre-fills every field from the record, the
    empty hardship reason too, so changing the group to «Khó khăn khác» went straight to the summary and saved
    the entry without the reason that group requires."""
    sid = _seed(sqlite_engine, sqlite_world, clock)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    await teacher.tap("Sửa một mục")
    await teacher.tap("Đối tượng")
    await teacher.tap("Khó khăn khác")
    assert "Hoàn cảnh khó khăn cụ thể" in teacher.text and not teacher.has_option("Bỏ qua")
    await teacher.say("Mẹ bị bệnh nặng")
    assert "Kiểm tra lại" in teacher.text and "Mẹ bị bệnh nặng" in teacher.text
    await teacher.tap("Lưu")
    row = _row(sqlite_engine, sid)
    assert row.category == "other_hardship" and row.hardship_reason == "Mẹ bị bệnh nặng"
    # And back: the reason goes with the group that needed it.
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    await teacher.tap("Sửa một mục")
    await teacher.tap("Đối tượng")
    await teacher.tap("Hộ nghèo")
    await teacher.tap("Lưu")
    row = _row(sqlite_engine, sid)
    assert row.category == "poor" and row.hardship_reason is None


async def test_the_record_list_has_a_way_out(eng, sqlite_engine, sqlite_world, clock) -> None:
    _seed(sqlite_engine, sqlite_world, clock)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"], channel="zalo")
    await teacher.say("/cuatoi")
    assert teacher.labels[-1] == "↩ Thoát"
    await teacher.say(str(len(teacher.labels)))  # typed as its number, as on Zalo
    assert "Đã thoát «Hồ sơ của tôi»" in teacher.text
    assert _conversation_gone(sqlite_engine, sqlite_world.teacher_a)
    # From a record's card, "Quay lại" goes back to the list, which still offers the way out.
    await teacher.say("/cuatoi")
    await teacher.tap("Nguyễn Thị Mai")
    await teacher.tap("Quay lại")
    assert teacher.has_option("Thoát") and teacher.has_option("Nguyễn Thị Mai")


def _conversation_gone(db, staff_id: int) -> bool:
    from storage.models import Conversation

    with Session(db) as s:
        return s.exec(select(Conversation).where(Conversation.staff_id == staff_id)).first() is None
