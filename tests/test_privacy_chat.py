"""Children's data through the chat: the consent step of /dangky (notice from the programme file, "No" saves
nothing), consent shown in /cuatoi and completed with /dongy, one access-log row per read, /xoahs with a
confirmation naming the pupil, and the password-protected workbook of /xuatfilemk."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import msoffcrypto
import openpyxl
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.programme import Privacy
from scheduler.service import SchedulerService
from storage import access_log
from storage.models import AccessLog, Conversation, Student
from tests.engine_helpers import CONSENT_LABEL, Chat, fill, make_engine
from tests.test_reports_data import seed_reports

NOTICE = "Thông báo thử nghiệm: nhà trường chỉ dùng dữ liệu của em để xét cấp máy tính; liên hệ thầy Tiến."


@pytest.fixture
def custom_programme(programme):
    return programme.model_copy(update={"privacy": Privacy(notice_vi=NOTICE, notice_en="Test notice: " + "x" * 20)})


@pytest.fixture
def eng(sqlite_engine, sqlite_world, custom_programme, clock, tmp_path):
    return make_engine(sqlite_engine, custom_programme, clock, media_dir=tmp_path / "media")


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


def _count(db, model) -> int:
    with Session(db) as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def _log(db) -> list[AccessLog]:
    with Session(db) as s:
        return access_log.entries(s)


async def _register(chat: Chat, name: str = "Lê Thị Hoa", code: str = "0123456789") -> None:
    await fill(
        chat, "/dangky", "tap:Phụ huynh đã đồng ý", name, "01/02/2012", "4A", code, "tap:Nữ", "tap:Hộ nghèo",
        "tap:Máy tính", "tap:Bỏ qua", "tap:Bỏ qua", "tap:Bỏ qua",
    )  # fmt: skip
    assert "Kiểm tra lại" in chat.text
    await chat.tap("Lưu")
    assert "Đã lưu" in chat.text


# --- consent ------------------------------------------------------------------------------------------------------


async def test_consent_notice_comes_from_the_programme_file(teacher) -> None:
    await teacher.say("/dangky")
    assert NOTICE in teacher.text and "Phụ huynh của em đã đồng ý chưa?" in teacher.text
    assert teacher.labels == ["✅ Phụ huynh đã đồng ý", "Chưa / không đồng ý"]


async def test_consent_no_stops_and_saves_nothing(teacher, sqlite_engine) -> None:
    await teacher.say("/dangky")
    await teacher.tap("Chưa / không đồng ý")
    assert "không có gì được lưu" in teacher.text
    assert _count(sqlite_engine, Student) == 0 and _count(sqlite_engine, Conversation) == 0
    await teacher.say("Lê Thị Hoa")  # no form open any more: the name is not taken as an answer
    assert _count(sqlite_engine, Student) == 0


async def test_consent_bad_answer_asks_again(teacher) -> None:
    await teacher.say("/dangky")
    await teacher.say("có lẽ")
    assert "Phụ huynh của em đã đồng ý chưa?" in teacher.text and teacher.labels[0] == "✅ Phụ huynh đã đồng ý"


async def test_consent_yes_stores_the_date_shown_in_cuatoi_and_exported(
    eng, teacher, sqlite_engine, sqlite_world, clock
) -> None:
    await _register(teacher)
    with Session(sqlite_engine) as s:
        [st] = s.scalars(select(Student)).all()
        assert st.consent_at == clock.now()
    await teacher.say("/cuatoi")
    await teacher.tap("Lê Thị Hoa")
    assert "Phụ huynh đồng ý: 17/11/2021" in teacher.text
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/xuatfile")
    [doc] = [o for o in principal.replies if o.document is not None]
    ws = openpyxl.load_workbook(doc.document)["Nhu cầu"]
    header = [c.value for c in ws[1]]
    assert ws.cell(2, header.index("Phụ huynh đồng ý ngày") + 1).value.date() == clock.now().date()


async def test_older_entries_are_counted_and_completed_with_dongy(
    eng, teacher, sqlite_engine, sqlite_world, clock
) -> None:
    await _register(teacher, "Lê Thị Hoa", "0123456789")
    await _register(teacher, "Trần Văn Bình", "0123456788")
    with Session(sqlite_engine) as s:  # as if registered before this change: consent not recorded
        old = s.scalar(select(Student).where(Student.code == "0123456788"))
        old.consent_at = None
        s.add(old)
        s.commit()
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/tonghop")
    assert "Hồ sơ chưa ghi nhận đồng ý của phụ huynh: 1" in principal.text
    await teacher.say("/cuatoi")
    await teacher.tap("Trần Văn Bình")
    assert "chưa ghi nhận" in teacher.text and "/dongy" in teacher.text
    await teacher.say("/huy")
    await principal.say("/dongy")
    assert principal.labels == ["Trần Văn Bình — 4A — 0123456788"]
    await principal.tap("Trần Văn Bình")
    assert NOTICE in principal.text and "Trần Văn Bình" in principal.text
    await principal.tap("Chưa / không đồng ý")
    assert "Chưa ghi nhận" in principal.text
    await principal.say("/dongy")
    await principal.tap("Trần Văn Bình")
    await principal.tap(CONSENT_LABEL)
    assert "Đã ghi nhận" in principal.text and "Còn 0 hồ sơ" in principal.text
    await principal.say("/dongy")
    assert "Mọi hồ sơ đều đã có đồng ý" in principal.text
    await principal.say("/tonghop")
    assert "chưa ghi nhận đồng ý" not in principal.text


# --- the access log: one row per read, the right scope -----------------------------------------------------------


async def test_each_chat_read_writes_exactly_one_log_row(eng, teacher, sqlite_engine, sqlite_world) -> None:
    await _register(teacher)
    assert _log(sqlite_engine) == []  # one's own entries are not logged
    await teacher.say("/cuatoi")
    await teacher.tap("Lê Thị Hoa")
    await teacher.say("/huy")
    assert _log(sqlite_engine) == []
    await teacher.say("/tonghop")
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/tonghop")
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/xuatfile")
    await officer.say("/xuatfilemk")
    await principal.say("/duyet")  # the teachers' registrations
    if any("Đăng ký chờ duyệt" in label for label in principal.labels):  # the computers forms add a menu
        await principal.tap("Đăng ký chờ duyệt")
    await principal.tap("Duyệt")
    assert "Đã duyệt em Lê Thị Hoa" in principal.text
    await principal.say("/huy")
    await principal.say("/duyet")  # no registration left to read: no row (the list below has one review)
    await principal.say("/huy")
    rows = [(r.actor, r.role, r.what, r.scope, r.pupils) for r in _log(sqlite_engine)]
    assert rows == [
        ("Trần Văn Minh", "teacher", "summary", "school:TH-PHUHOA1", 1),
        ("Lê Minh Tiến", "district_officer", "summary", "district:TDM", 1),
        ("Nguyễn Thị Lan", "principal", "export", "school:TH-PHUHOA1", 1),
        ("Lê Minh Tiến", "district_officer", "export_pw", "district:TDM", 1),
        ("Nguyễn Thị Lan", "principal", "review", "school:TH-PHUHOA1", 1),
    ]


# --- the password-protected workbook -----------------------------------------------------------------------------


async def test_protected_workbook_opens_with_the_password_and_not_without(eng, teacher, sqlite_world, tmp_path) -> None:
    await _register(teacher)
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/xuatfile")
    assert "/xuatfilemk" in principal.text  # the plain export says how to get a protected one
    await principal.say("/xuatfilemk")
    [doc] = [o for o in principal.replies if o.document is not None]
    assert doc.document_name == "tong-hop-th-phuhoa1-17-11-2021.xlsx"
    password = re.search(r"Mật khẩu mở tệp: (\S+)", principal.text).group(1)
    caption = next(o.text for o in principal.replies if o.document is not None)
    assert password not in caption  # its own message: forwarding the file does not forward the password
    exports = sorted(p.name for p in (tmp_path / "media" / "exports").iterdir())
    assert len(exports) == 2  # the plain /xuatfile and the protected one; no unprotected copy of the second

    with pytest.raises(zipfile.BadZipFile):  # an encrypted OLE container, not a readable workbook
        openpyxl.load_workbook(doc.document)
    data = doc.document.read_bytes()
    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    assert office.is_encrypted()
    with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
        office.load_key(password="sai-mat-khau")
        office.decrypt(io.BytesIO())
    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    plain = io.BytesIO()
    office.decrypt(plain)
    wb = openpyxl.load_workbook(plain)
    assert wb.sheetnames == ["Nhu cầu", "Tiếp nhận", "Bàn giao", "Tổng hợp"]
    assert "Lê Thị Hoa" in [c.value for c in wb["Nhu cầu"]["B"]]


async def test_teacher_cannot_export(teacher) -> None:
    await teacher.say("/xuatfilemk")
    assert "không dành cho giáo viên" in teacher.text


# --- /xoahs ------------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(sqlite_engine, sqlite_world, clock, programme, tmp_path):
    return seed_reports(sqlite_engine, sqlite_world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")


async def test_xoahs_confirms_by_name_and_erases(eng, seeded, sqlite_engine, sqlite_world, tmp_path) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/xoahs")
    await principal.say("abc")
    assert "chỉ gồm chữ số" in principal.text
    await principal.say("079215100001")  # a pupil of school B: not in the principal's scope
    assert "Không tìm thấy học sinh mã 079215100001" in principal.text
    await principal.say("079215000001")
    assert "Nguyễn Thị Ánh" in principal.text and "vĩnh viễn" in principal.text and "1 bàn giao" in principal.text
    await principal.tap("Không, giữ lại")
    assert "không xóa gì" in principal.text and _count(sqlite_engine, Student) == 10
    await principal.say("/xoahs 079215000001")  # the code as the command's argument
    await principal.tap("Xóa vĩnh viễn")
    assert "Đã xóa mọi dữ liệu của em Nguyễn Thị Ánh" in principal.text
    with Session(sqlite_engine) as s:
        assert s.scalar(select(Student).where(Student.code == "079215000001")) is None
        assert _count(sqlite_engine, Student) == 9
    [row] = _log(sqlite_engine)
    assert (row.what, row.scope, row.actor) == ("erase", "student:079215000001", "Nguyễn Thị Lan")


async def test_xoahs_roles(eng, seeded, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/xoahs")
    assert "không dành cho giáo viên" in teacher.text
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/xoahs 074215000001")  # the other district's pupil
    assert "Không tìm thấy học sinh mã 074215000001" in officer.text
    await officer.say("079215100001")
    assert "Bùi Gia Huy" in officer.text


# --- the daily job deletes old export files ---------------------------------------------------------------------


async def test_daily_job_deletes_export_files_after_the_configured_days(
    sqlite_engine, sqlite_world, custom_programme, clock, tmp_path
) -> None:
    import os

    from storage.photos import PhotoStore

    programme = custom_programme.model_copy(update={"privacy": Privacy(export_keep_days=3)})
    store = PhotoStore(tmp_path / "media")
    exports = store.media_dir / "exports"
    exports.mkdir(parents=True)
    now = clock.now().timestamp()
    for name, age in (("old.xlsx", 4), ("new.xlsx", 2)):
        (exports / name).write_bytes(b"x")
        os.utime(exports / name, (now - age * 86400, now - age * 86400))
    service = SchedulerService(
        db=sqlite_engine, programme=programme, clock=clock, senders={}, mailer=None, holder="t", photos=store
    )
    assert await service.clean_export_files() == 1
    assert [p.name for p in exports.iterdir()] == ["new.xlsx"]
    clock.advance(timedelta(days=2))
    await service._cleanup_job()  # the daily job runs both clean-ups
    assert list(exports.iterdir()) == []
