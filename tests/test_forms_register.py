"""/dangky end to end through the engine: every bad input issue 3 lists, duplicates, the principal told."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlmodel import Session

from storage.models import Student
from tests.engine_helpers import CONSENT, CONSENT_LABEL, Chat, fill, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


def _students(db) -> list[Student]:
    with Session(db) as s:
        return list(s.exec(select(Student).order_by(Student.id)).scalars().all())


async def test_full_registration_with_every_bad_input_on_the_way(teacher, sqlite_engine, sqlite_world) -> None:
    await teacher.say("/dangky")
    assert "Đăng ký học sinh cần hỗ trợ" in teacher.text and "Phụ huynh của em đã đồng ý chưa?" in teacher.text
    await teacher.tap(CONSENT_LABEL)
    assert "Họ và tên" in teacher.text
    for bad, why in (("Nguyễn Văn 4n", "không có số"), ("Nguyễn An 🙂", "không có số"), ("An", "từ 2 đến 7")):
        await teacher.say(bad)
        assert why in teacher.text and "Họ và tên" in teacher.text
    await teacher.say("nguyễn văn AN")
    for bad, why in (
        ("31/02/2012", "không có trên lịch"),
        ("2012-13-01", "chưa đúng dạng"),
        ("01/01/2030", "tương lai"),
        ("01/01/2000", "không phải tuổi học sinh"),
    ):
        await teacher.say(bad)
        assert why in teacher.text and "Ngày sinh" in teacher.text
    await teacher.say("05/09/2012")
    for bad in ("lớp năm", "7A"):  # not a class; not a primary-school grade
        await teacher.say(bad)
        assert "⚠️" in teacher.text and "Lớp?" in teacher.text
    await teacher.say("4a2")
    for bad, why in (("01234A6789", "chỉ gồm chữ số"), ("12345", "có 5 số")):
        await teacher.say(bad)
        assert why in teacher.text and "Mã định danh" in teacher.text
    await teacher.say("0123 4567 89")
    await teacher.say("con trai")
    assert "không khớp" in teacher.text and "Giới tính" in teacher.text
    await teacher.tap("Nam")
    await teacher.tap("Khó khăn khác")
    assert "Hoàn cảnh khó khăn" in teacher.text
    await teacher.tap("Quay lại")
    assert "đối tượng" in teacher.text
    await teacher.tap("Khó khăn khác")
    await teacher.say("Bố mất việc do dịch, nhà thuê trọ")
    await teacher.tap("Cả hai")
    await teacher.say("trần thị bình")
    await teacher.say("12345")
    assert "không hợp lệ" in teacher.text and "Số điện thoại người giám hộ" in teacher.text
    await teacher.say("0912 345 678")
    await teacher.say("Em học tốt, cần máy để học trực tuyến <script>")
    assert "Kiểm tra lại" in teacher.text
    summary = teacher.replies[-1].text
    assert "Nguyễn Văn An" in summary and "05/09/2012" in summary and "4A2" in summary and "Khó khăn khác" in summary
    assert "&lt;script&gt;" in summary and "<script>" not in summary  # user text escaped in HTML
    assert "0912 345 678" in summary
    await teacher.tap("Lưu")
    assert "Đã lưu đăng ký của em Nguyễn Văn An" in teacher.text
    [st] = _students(sqlite_engine)
    assert (st.full_name, st.birth_date, st.class_name, st.code, st.gender, st.category, st.need) == (
        "Nguyễn Văn An",
        date(2012, 9, 5),
        "4A2",
        "0123456789",
        "male",
        "other_hardship",
        "both",
    )
    assert st.hardship_reason.startswith("Bố mất việc") and st.guardian_name == "Trần Thị Bình"
    assert st.guardian_phone == "+84912345678" and st.school_id == sqlite_world.school_a and st.status == "pending"


async def _register(chat: Chat, name: str, birth: str, code: str) -> None:
    await fill(
        chat,
        "/dangky",
        CONSENT,
        name,
        birth,
        "4A",
        code,
        "tap:Nữ",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Lưu",
    )


async def test_duplicate_code_names_the_school_and_date(eng, teacher, sqlite_world, sqlite_engine) -> None:
    await _register(teacher, "Lê Thị Hoa", "01/02/2012", "0123456789")
    other = await Chat.linked(eng, sqlite_world.phones["teacher_b"])
    await fill(other, "/dangky", CONSENT, "Phạm Văn Nam", "01/02/2008", "8A")
    await other.say("0123456789")
    assert "đã được đăng ký tại Trường Tiểu học Phú Hòa 1 ngày 17/11/2021" in other.text
    assert "Mã định danh" in other.text  # asked again
    assert len(_students(sqlite_engine)) == 1


async def test_same_name_and_birth_asks_first(eng, teacher, sqlite_world, sqlite_engine) -> None:
    await _register(teacher, "Lê Thị Hoa", "01/02/2012", "0123456789")
    colleague = await Chat.linked(eng, sqlite_world.phones["teacher_a2"])
    await fill(colleague, "/dangky", CONSENT, "le thi hoa", "01/02/2012")
    assert "Trường đã có em Lê Thị Hoa" in colleague.text and "0123456789" in colleague.text
    await colleague.tap("Không, dừng lại")
    assert "Đã dừng đăng ký" in colleague.text
    await fill(
        colleague,
        "/dangky",
        CONSENT,
        "le thi hoa",
        "01/02/2012",
        "tap:Đúng, là em khác",
        "3A",
        "0123456780",
        "tap:Nữ",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Lưu",
    )
    assert "Đã lưu" in colleague.text
    assert len(_students(sqlite_engine)) == 2


async def test_code_taken_while_filling_is_caught_at_save(eng, teacher, sqlite_world, sqlite_engine) -> None:
    colleague = await Chat.linked(eng, sqlite_world.phones["teacher_a2"])
    await fill(
        colleague,
        "/dangky",
        CONSENT,
        "Đỗ Văn Long",
        "01/03/2012",
        "4A",
        "0123456789",
        "tap:Nam",
        "tap:Hộ nghèo",
        "tap:Máy tính",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
        "tap:Bỏ qua",
    )
    assert "Kiểm tra lại" in colleague.text
    await _register(teacher, "Lê Thị Hoa", "01/02/2012", "0123456789")  # same code saved first
    await colleague.tap("Lưu")
    assert "đã được đăng ký tại" in colleague.text and "Mã định danh" in colleague.text
    await colleague.say("0123456700")
    assert "Kiểm tra lại" in colleague.text  # back to the summary after the fix
    await colleague.tap("Lưu")
    assert "Đã lưu" in colleague.text


async def test_principal_is_told_of_a_new_registration(eng, teacher, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"], channel="zalo", user_id="za-p")
    await _register(teacher, "Lê Thị Hoa", "01/02/2012", "0123456789")
    [note] = teacher.notifications
    assert note.chat_id == principal.chat_id and note.channel == "zalo"
    assert "Lê Thị Hoa" in note.text and "/duyet" in note.text


async def test_district_officer_cannot_register(eng, sqlite_world) -> None:
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/dangky")
    assert "không dành cho chuyên viên" in officer.text


async def test_registration_after_the_report_is_marked_late(eng, teacher, sqlite_world, sqlite_engine) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/chotbaocao")
    await principal.tap("Chốt báo cáo")
    assert "Đã chốt báo cáo" in principal.text
    await _register(teacher, "Lê Thị Hoa", "01/02/2012", "0123456789")
    assert "bổ sung sau hạn" in teacher.text
    assert _students(sqlite_engine)[0].late
