"""/nhapds, /maunhap and /duyet's "approve the whole file" through the engine; Zalo; the Telegram mapping."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlmodel import Session

from storage.models import Student, StudentImport
from tests.engine_helpers import Chat, make_engine, media_dir
from tests.import_files import first_data_row, good_row, xlsx


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, tmp_path):
    return make_engine(sqlite_engine, programme, clock, media_dir=media_dir(tmp_path))


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


@pytest.fixture
async def principal(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["principal_a"])


def _students(db) -> list[Student]:
    with Session(db) as s:
        return list(s.exec(select(Student).order_by(Student.id)).scalars().all())


def _count(db, model=Student) -> int:
    with Session(db) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


CLASS = ["Nguyễn Văn An", "Trần Thị Bé", "Lê Văn Cảnh", "Phạm Thị Dung"]


def _class_file(**bad) -> bytes:
    rows = [good_row(i, B=name) for i, name in enumerate(CLASS, 1)]
    for key, value in bad.items():  # e.g. r2_C="31/02/2012"
        r, col = key[1:].split("_")
        rows[int(r) - 1][ord(col) - ord("A")] = value
    return xlsx(rows)


async def test_template_filled_and_sent_back_is_imported(teacher, principal, sqlite_engine) -> None:
    await teacher.say("/maunhap")
    [doc] = teacher.documents
    assert doc.document_name == "mau-danh-sach-hoc-sinh.xlsx" and "Tệp mẫu" in teacher.text
    wb = load_workbook(doc.document)
    ws = wb["Danh sách"]
    for i, name in enumerate(CLASS):  # the teacher types below the example row, codes as text
        for c, v in enumerate([i + 1, name, "05/09/2012", "4A1", f"01234567{i:02d}", "Nữ", "Hộ cận nghèo", None,
                               "Cả hai", "Nguyễn Văn Bình", "0912345678"], start=1):  # fmt: skip
            ws.cell(5 + i, c, v)
    buf = io.BytesIO()
    wb.save(buf)
    await teacher.document(buf.getvalue(), "lop-4a1.xlsx")  # sent straight away: /nhapds starts by itself
    assert "4 em hợp lệ, 0 dòng có lỗi" in teacher.text and "bỏ qua dòng «Ví dụ»" in teacher.text
    assert _count(sqlite_engine) == 0  # nothing before «Lưu»
    await teacher.tap("Lưu")
    assert "Đã lưu 4 em" in teacher.text
    saved = _students(sqlite_engine)
    assert [s.full_name for s in saved] == CLASS and {s.status for s in saved} == {"pending"}
    assert {(s.gender, s.category, s.need) for s in saved} == {("female", "near_poor", "both")}
    assert saved[0].guardian_phone == "+84912345678"
    [note] = teacher.notifications
    assert "gửi danh sách 4 em" in plain(note.text)


def plain(text: str) -> str:
    from core.messages import plain_text

    return plain_text(text)


async def test_errors_come_back_by_line_and_column_with_the_annotated_file(teacher, sqlite_engine) -> None:
    await teacher.say("/nhapds")
    assert "Gửi tệp danh sách" in teacher.text
    await teacher.say("đây là danh sách")
    assert "cần gửi một tệp" in teacher.text
    await teacher.document(_class_file(r2_C="31/02/2012", r4_E=123456789), "Lớp 4A1.xlsx")
    first = first_data_row()
    assert "2 em hợp lệ, 2 dòng có lỗi" in teacher.text
    assert f"Dòng {first + 1}, cột C (Ngày sinh)" in teacher.text and "không có trên lịch" in teacher.text
    assert f"Dòng {first + 3}, cột E (Mã định danh)" in teacher.text and "bỏ số 0" in teacher.text
    [doc] = teacher.documents
    assert doc.document_name == "lop-4a1-can-sua.xlsx"
    ws = load_workbook(doc.document)["Lớp 4A1"]
    assert ws[f"C{first + 1}"].comment is not None and ws[f"E{first + 3}"].comment is not None
    assert _count(sqlite_engine) == 0
    # Fixed and sent again: a new /nhapds starts from the file.
    await teacher.document(_class_file(), "Lớp 4A1.xlsx")
    assert "4 em hợp lệ" in teacher.text
    await teacher.tap("Lưu")
    assert _count(sqlite_engine) == 4


async def test_a_hostile_file_gets_one_line_and_a_second_chance(teacher, sqlite_engine) -> None:
    from tests.import_files import zip_bomb

    await teacher.say("/nhapds")
    await teacher.document(zip_bomb(), "lop.xlsx", size=1000)  # the platform under-reports: bytes are checked
    assert "tỉ lệ nén bất thường" in teacher.text and "Gửi tệp danh sách" in teacher.text
    await teacher.document(b"PK\x03\x04", "lop.xlsx", size=50 * 1024 * 1024)
    assert "Tệp quá lớn" in teacher.text
    await teacher.document(_class_file(), "lop.xlsx")
    assert "4 em hợp lệ" in teacher.text
    assert _count(sqlite_engine) == 0


async def test_a_file_in_another_form_is_refused_politely(teacher) -> None:
    await teacher.say("/dangky")
    await teacher.document(_class_file(), "lop.xlsx")
    assert "chưa cần tệp" in teacher.text and "đã đồng ý chưa" in teacher.text  # the current question again


async def test_cancel_saves_nothing(teacher, sqlite_engine) -> None:
    await teacher.document(_class_file(), "lop.xlsx")
    await teacher.tap("Hủy")
    assert "Không có gì được lưu" in teacher.text and _count(sqlite_engine) == 0


async def test_duplicates_against_the_database_block_saving(teacher, sqlite_engine) -> None:
    await teacher.document(_class_file(), "lop.xlsx")
    await teacher.tap("Lưu")
    await teacher.document(_class_file(), "lop-lan-2.xlsx")
    assert "0 em hợp lệ, 4 dòng có lỗi" in teacher.text and "đã được đăng ký" in teacher.text
    assert _count(sqlite_engine) == 4


async def test_principal_imports_then_approves_the_whole_file(principal, teacher, sqlite_engine) -> None:
    await teacher.document(_class_file(), "lop.xlsx")
    await teacher.tap("Lưu")
    await principal.say("/duyet")
    await principal.tap("Đăng ký chờ duyệt")
    assert "Nguyễn Văn An" in principal.text and principal.has_option("Từ chối")
    assert principal.has_option("Duyệt cả tệp «lop.xlsx» (4 em)")
    await principal.tap("Duyệt cả tệp")
    assert "Đã duyệt 4 em" in principal.text
    assert {s.status for s in _students(sqlite_engine)} == {"approved"}
    assert any("đã duyệt 4 em" in plain(n.text) for n in principal.notifications)
    # The principal's own list follows the /dangky rule: pending, reviewed in /duyet like any other.
    rows = [good_row(i, B=n, E=f"09{i:08d}") for i, n in enumerate(["Hồ Văn Em", "Đỗ Thị Gấm"], 1)]
    await principal.document(xlsx(rows), "hieu-truong.xlsx")
    await principal.tap("Lưu")
    assert [s.status for s in _students(sqlite_engine)][-2:] == ["pending", "pending"]


async def test_zalo_explains_how_to_send_the_file(eng, sqlite_world, sqlite_engine) -> None:
    zalo = await Chat.linked(eng, sqlite_world.phones["teacher_a"], channel="zalo")
    await zalo.say("/nhapds")
    assert "Zalo không cho phép bot nhận tệp" in zalo.text and "Telegram" in zalo.text and "/dangky" in zalo.text
    await zalo.say("/maunhap")
    assert "Zalo không cho phép bot gửi tệp" in zalo.text and not zalo.documents
    assert _count(sqlite_engine, StudentImport) == 0


async def test_district_officer_has_the_template_but_not_the_chat_import(eng, sqlite_world) -> None:
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/maunhap")
    assert len(officer.documents) == 1
    await officer.say("/nhapds")
    assert "không dành cho" in officer.text
    await officer.document(_class_file(), "lop.xlsx")
    assert "/nhapds" in officer.text and not officer.documents


# --- the Telegram adapter ---------------------------------------------------------------------------------------


def _tg_message(file_name: str, mime: str) -> object:
    from telegram import Chat as TgChat
    from telegram import Document, Message, User

    user = User(id=42, first_name="Minh", is_bot=False)
    msg = Message(
        message_id=7,
        date=__import__("datetime").datetime(2021, 11, 17, tzinfo=__import__("datetime").UTC),
        chat=TgChat(id=42, type="private"),
        from_user=user,
        document=Document(file_id="F1", file_unique_id="U1", file_name=file_name, mime_type=mime, file_size=1234),
    )
    msg.set_bot(SimpleNamespace())
    return msg


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("lop 4A1.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "document"),
        ("danh sach.csv", "text/csv", "document"),
        ("export", "application/vnd.ms-excel", "document"),
        ("IMG_0001.jpg", "image/jpeg", "photo"),  # an image sent as a file keeps the photo path
        ("bien-ban.pdf", "application/pdf", "photo"),  # as before: the photo step explains it is not an image
    ],
)
def test_telegram_maps_spreadsheets_to_documents(clock, name, mime, kind) -> None:
    from telegram import Update

    from bot.telegram import incoming_from_update

    incoming = incoming_from_update(Update(update_id=1, message=_tg_message(name, mime)), clock=clock)
    if kind == "document":
        assert incoming.document is not None and incoming.photo is None
        assert (incoming.document.file_name, incoming.document.size) == (name, 1234)
    else:
        assert incoming.photo is not None and incoming.photo.as_document and incoming.document is None


async def test_formula_like_text_is_stored_as_text_and_exported_quoted(principal, teacher, sqlite_engine) -> None:
    evil = '=HYPERLINK("http://x.example","bấm")'
    rows = [good_row(1, G="Khó khăn khác", H=evil, L="+cmd|' /C calc'!A0"), good_row(2, B="Trần Thị Bé")]
    await teacher.document(xlsx(rows), "lop.xlsx")
    await teacher.tap("Lưu")
    saved = _students(sqlite_engine)
    assert (saved[0].hardship_reason, saved[0].note) == (evil, "+cmd|' /C calc'!A0")
    await principal.say("/duyet")
    await principal.tap("Đăng ký chờ duyệt")
    await principal.tap("Duyệt cả tệp")
    await principal.say("/xuatfile")
    [doc] = principal.documents
    cells = [c for row in load_workbook(doc.document)["Nhu cầu"].iter_rows() for c in row]
    found = [c for c in cells if c.value == evil]  # the export has no note column; the reason is there
    assert len(found) == 1
    for c in found:
        assert c.data_type == "s" and c.quotePrefix, c.coordinate


async def test_row_and_size_limits_come_from_the_programme_file(
    sqlite_engine, sqlite_world, programme, clock, tmp_path
):
    strict = programme.model_copy(
        update={"imports": programme.imports.model_copy(update={"max_rows": 3, "max_bytes": 20_000})}
    )
    eng = make_engine(sqlite_engine, strict, clock, media_dir=media_dir(tmp_path))
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.document(_class_file(), "lop.xlsx")  # 4 pupils
    assert "hơn 3 dòng" in teacher.text
    await teacher.document(b"x" * 30_000, "lop.csv")
    assert "Tệp quá lớn (29 KB; tối đa 19 KB)" in teacher.text
    assert _count(sqlite_engine) == 0


async def test_the_consent_column_records_each_pupils_consent_day(teacher, principal, sqlite_engine) -> None:
    """Issue 19 for whole class lists: the paper consent form's day, per pupil, in an optional column (a date
    cell or dd/mm/yyyy text); a blank cell leaves that pupil "not recorded" for /dongy. A future day or one
    before the programme is refused by line and column, and nothing is saved."""
    from datetime import UTC, date, datetime

    from tests.import_files import HEAD

    head = HEAD + ["Ngày phụ huynh đồng ý"]
    rows = [good_row(i, B=name) + [None] for i, name in enumerate(CLASS, 1)]
    rows[0][12], rows[1][12], rows[2][12] = "15/11/2021", date(2021, 11, 16), "18/11/2021"
    await teacher.document(xlsx(rows, head=head), "lop-4a1.xlsx")
    assert "Dòng" in teacher.text and "cột M (Ngày phụ huynh đồng ý)" in teacher.text and "tương lai" in teacher.text
    rows[2][12] = "01/01/2020"
    await teacher.document(xlsx(rows, head=head), "lop-4a1.xlsx")
    assert "trước khi chương trình" in teacher.text and _count(sqlite_engine) == 0
    rows[2][12] = None
    await teacher.document(xlsx(rows, head=head), "lop-4a1.xlsx")
    assert "4 em hợp lệ" in teacher.text and "2 em có ngày đồng ý; 2 em chưa ghi nhận" in teacher.text
    await teacher.tap("Lưu")
    consent = {s.full_name: s.consent_at for s in _students(sqlite_engine)}
    assert consent == {
        CLASS[0]: datetime(2021, 11, 14, 17, 0, tzinfo=UTC),  # 15/11 00:00 in Thủ Dầu Một
        CLASS[1]: datetime(2021, 11, 15, 17, 0, tzinfo=UTC),
        CLASS[2]: None,
        CLASS[3]: None,
    }
    await principal.say("/tonghop")
    assert "Hồ sơ chưa ghi nhận đồng ý của phụ huynh: 2" in plain(principal.text)


async def test_the_template_carries_the_consent_column(teacher) -> None:
    await teacher.say("/maunhap")
    [doc] = teacher.documents
    ws = load_workbook(doc.document)["Danh sách"]
    assert "Ngày phụ huynh đồng ý (dd/mm/yyyy)" in [c.value for c in ws[3]]
