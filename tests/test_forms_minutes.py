"""Minutes in the chat, through the engine: the PDF after /bangiao and /nhanmay, /bienban to get it again and to
send the signed sheet later — with its bad inputs (a PDF instead of a photo, the handover photo itself, a sheet
reused for two handovers, a cancelled step), the counts in /tonghop and the workbook, and school scope."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pypdf
import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.vocabulary import FlagKind
from reports.export import export_workbook
from reports.summary import build_summary, format_summary
from storage.db import session_scope
from storage.models import Flag, Handover, HandoverPhoto
from storage.scope import Scope
from tests.engine_helpers import Chat
from tests.photo_factory import minimal_pdf, phone_jpeg
from tests.test_forms_handover import _to_photos, eng, principal, seeded, store, teacher  # noqa: F401


def _pdf_text(out) -> str:
    assert out.document is not None and out.document.suffix == ".pdf"
    return " ".join(
        " ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(out.document.read_bytes())).pages
    )


def _documents(chat: Chat) -> list:
    return [o for o in chat.replies if o.document is not None]


async def _bangiao(chat: Chat, student: str = "Nguyễn Văn An", photo_seed: int = 1, minutes: bytes | None = None):
    await _to_photos(chat, student, batch="HP ProBook")
    await chat.photo(phone_jpeg(photo_seed))
    await chat.tap("Xong")
    assert "/bienban" in chat.text  # the minutes step says the printable sheet follows the save
    if minutes is None:
        await chat.tap("Bỏ qua")
    else:
        await chat.photo(minutes)
    await chat.tap("Lưu")
    assert "Đã ghi nhận bàn giao" in chat.text


def _handover(db, name_part: str = "") -> Handover:
    with Session(db) as s:
        return list(s.scalars(select(Handover).order_by(Handover.id)))[-1]


async def test_bangiao_sends_the_minutes_pdf(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher)
    h = _handover(sqlite_engine)
    [doc] = _documents(teacher)
    code = f"BG{h.id:06d}"
    assert doc.document_name == f"bien-ban-{code}.pdf"
    assert doc.document.parent.name == "minutes" and code not in doc.document.name  # random name on disk
    assert "in ra, ký" in doc.text and "/bienban" in doc.text
    text = _pdf_text(doc)
    assert "BIÊN BẢN BÀN GIAO MÁY TÍNH" in text and "Nguyễn Văn An" in text and "Nguyễn Thị Lan" in text
    assert "Thủ Dầu Một, ngày 17 tháng 11 năm 2021" in text and "HP ProBook 440" in text
    assert "Trần Văn Minh" in text  # the teacher who recorded it signs as homeroom teacher
    assert h.minutes_signed_at is None


async def test_a_signed_sheet_sent_with_the_handover_needs_no_pdf(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher, minutes=phone_jpeg(40))
    assert _documents(teacher) == []
    assert _handover(sqlite_engine).minutes_signed_at is not None


async def test_bienban_later_marks_the_handover_signed(teacher, principal, seeded, sqlite_engine, eng) -> None:
    await _bangiao(teacher)
    h = _handover(sqlite_engine)
    eng.clock.advance(timedelta(days=2))  # printed, signed at the parents' meeting, photographed later

    await teacher.say("/bienban")
    assert teacher.labels[0].startswith(f"BG{h.id:06d} — Nguyễn Văn An") and "chưa có biên bản ký" in teacher.labels[0]
    await teacher.tap(f"BG{h.id:06d}")
    assert "Bạn muốn" in teacher.text
    await teacher.tap("Gửi ảnh biên bản")
    assert "Chụp rõ cả tờ biên bản" in teacher.text

    await teacher.photo(minimal_pdf(), mime="application/pdf")  # the scan app's PDF, not a photo
    assert "Đây là tệp PDF, không phải ảnh" in teacher.text and "Chụp rõ cả tờ biên bản" in teacher.text
    await teacher.photo(b"not an image at all")
    assert "không phải là ảnh" in teacher.text
    await teacher.photo(phone_jpeg(41))
    assert f"Đã nhận ảnh biên bản đã ký của bàn giao BG{h.id:06d}" in teacher.text
    assert "biên bản đã ký" in teacher.text and "xem lại" not in teacher.text
    signed = _handover(sqlite_engine)
    assert signed.minutes_signed_at == eng.clock.now()
    with Session(sqlite_engine) as s:
        kinds = sorted(k for (k,) in s.execute(select(HandoverPhoto.kind).where(HandoverPhoto.handover_id == h.id)))
    assert kinds == ["minutes", "scene"]

    await teacher.say("/bienban")  # the record shows it
    assert "✅ biên bản đã ký" in teacher.labels[0]


async def test_the_handover_photo_is_not_the_minutes(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher, photo_seed=7)
    h = _handover(sqlite_engine)
    await teacher.say("/bienban")
    await teacher.tap(f"BG{h.id:06d}")
    await teacher.tap("Gửi ảnh biên bản")
    await teacher.photo(phone_jpeg(7))
    assert "Đây là ảnh buổi bàn giao" in teacher.text and "Chụp rõ cả tờ biên bản" in teacher.text
    assert _handover(sqlite_engine).minutes_signed_at is None


async def test_one_signed_sheet_for_two_handovers_is_flagged(teacher, principal, seeded, sqlite_engine) -> None:
    await _bangiao(teacher, "Nguyễn Văn An", photo_seed=1, minutes=phone_jpeg(50))
    first = _handover(sqlite_engine)
    await _bangiao(teacher, "Trần Thị Ánh", photo_seed=2)
    second = _handover(sqlite_engine)

    await teacher.say("/bienban")
    await teacher.tap(f"BG{second.id:06d}")
    await teacher.tap("Gửi ảnh biên bản")
    await teacher.photo(phone_jpeg(50))  # An's signed sheet, sent again for Ánh
    assert "Đã nhận ảnh biên bản" in teacher.text and "cần hiệu trưởng xem lại" in teacher.text.lower()
    assert f"bàn giao #{first.id}" in teacher.text
    [note] = teacher.notifications  # the principal hears of it
    assert f"BG{second.id:06d}" in note.text and "Trần Văn Minh" in note.text
    with Session(sqlite_engine) as s:
        flags = {(f.handover_id, f.kind) for f in s.scalars(select(Flag))}
    assert flags == {(first.id, FlagKind.PHOTO_REUSED), (second.id, FlagKind.PHOTO_REUSED)}


async def test_two_different_sheets_of_one_template_are_not_near_duplicates(teacher, seeded, sqlite_engine) -> None:
    """Minutes photos are matched by file only: look-alike printed sheets are no reason for a flag."""
    await _bangiao(teacher, "Nguyễn Văn An", photo_seed=1, minutes=phone_jpeg(60))
    # the same picture slightly recompressed: a near-duplicate for a scene photo, not a flag for minutes
    await _bangiao(teacher, "Trần Thị Ánh", photo_seed=2, minutes=phone_jpeg(60, quality=70))
    with Session(sqlite_engine) as s:
        assert list(s.scalars(select(Flag))) == []


async def test_cancelled_step_keeps_the_handover_unsigned(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher)
    h = _handover(sqlite_engine)
    await teacher.say("/bienban")
    await teacher.tap(f"BG{h.id:06d}")
    await teacher.tap("Gửi ảnh biên bản")
    await teacher.say("/huy")
    assert "Đã hủy" in teacher.text
    assert _handover(sqlite_engine).minutes_signed_at is None


async def test_bienban_gives_the_pdf_again(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher)
    h = _handover(sqlite_engine)
    await teacher.say("/bienban")
    await teacher.tap(f"BG{h.id:06d}")
    await teacher.tap("Lấy biên bản")
    [doc] = _documents(teacher)
    assert doc.document_name == f"bien-ban-BG{h.id:06d}.pdf" and "Nguyễn Văn An" in _pdf_text(doc)


async def test_teachers_get_minutes_of_their_school_only(
    eng, teacher, seeded, sqlite_engine, sqlite_world, programme
) -> None:
    from reports.minutes import MinutesNotFound, handover_sheet

    await _bangiao(teacher)
    h = _handover(sqlite_engine)
    other = await Chat.linked(eng, sqlite_world.phones["teacher_b"])
    await other.say("/bienban")
    assert "Trường chưa có bàn giao nào" in other.text and not other.options  # none of school A's offered
    with Session(sqlite_engine) as s:
        scope_b = Scope(district_id=sqlite_world.district_id, school_id=sqlite_world.school_b)
        with pytest.raises(MinutesNotFound):
            handover_sheet(s, programme=programme, scope=scope_b, handover_id=h.id)
        scope_a = Scope(district_id=sqlite_world.district_id, school_id=sqlite_world.school_a)
        assert handover_sheet(s, programme=programme, scope=scope_a, handover_id=h.id).pupil == "Nguyễn Văn An"


async def test_nhanmay_sends_the_receipt_minutes(principal, seeded) -> None:
    await principal.say("/nhanmay")
    await principal.tap("Hôm nay")
    await principal.say("2")
    await principal.tap("xách tay")
    await principal.say("Acer TravelMate B3")
    await principal.tap("Mới")
    await principal.say("AC-001, AC-002")
    await principal.tap("Lưu")
    assert "Đã ghi nhận lô máy" in principal.text
    [doc] = _documents(principal)
    assert doc.document_name.startswith("bien-ban-tiep-nhan-TN") and doc.document_name.endswith(".pdf")
    text = _pdf_text(doc)
    assert "BIÊN BẢN TIẾP NHẬN MÁY TÍNH" in text and "AC-001" in text and "AC-002" in text
    assert "Phòng Giáo dục và Đào tạo Thủ Dầu Một" in text and "tổng số: 2 máy" in text


async def test_counts_in_the_summary_and_the_workbook(
    teacher, seeded, sqlite_engine, programme, clock, tmp_path
) -> None:
    await _bangiao(teacher, "Nguyễn Văn An", photo_seed=1)
    await _bangiao(teacher, "Trần Thị Ánh", photo_seed=2, minutes=phone_jpeg(70))
    with session_scope(sqlite_engine) as s:
        h = s.scalars(select(Handover).order_by(Handover.id)).first()
        school = h.school_id
        summary = build_summary(s, scope=Scope(district_id=1, school_id=school), programme=programme, now=clock.now())
        assert summary.totals.unsigned_minutes == 1 and summary.totals.handed_over == 2
        assert "Bàn giao chưa có biên bản đã ký: 1" in format_summary(summary)
        out = export_workbook(
            s,
            scope=Scope(district_id=1, school_id=school),
            out=tmp_path / "a.xlsx",
            programme=programme,
            now=clock.now(),
        )
    wb = openpyxl.load_workbook(out)
    table = [[c.value for c in row] for row in wb["Bàn giao"].iter_rows()]
    rows = [dict(zip(table[0], r)) for r in table[1:] if r[0]]
    signed = [r["Biên bản đã ký lúc"] for r in rows]
    assert signed[0] is None and signed[1] is not None
    table = [[c.value for c in row] for row in wb["Tổng hợp"].iter_rows()]
    assert dict(zip(table[0], table[1]))["Chưa có biên bản đã ký"] == 1


async def test_the_same_sheet_twice_for_one_handover_is_refused(teacher, seeded, sqlite_engine) -> None:
    await _bangiao(teacher, minutes=phone_jpeg(80))
    h = _handover(sqlite_engine)
    await teacher.say("/bienban")
    await teacher.tap(f"BG{h.id:06d}")
    await teacher.tap("Gửi ảnh biên bản")
    await teacher.photo(phone_jpeg(80))
    assert f"Ảnh này đã được gửi cho bàn giao #{h.id} rồi" in teacher.text
    await teacher.photo(phone_jpeg(81))  # a second page of the minutes is welcome
    assert "Đã nhận ảnh biên bản đã ký" in teacher.text
    with Session(sqlite_engine) as s:
        kinds = sorted(k for (k,) in s.execute(select(HandoverPhoto.kind).where(HandoverPhoto.handover_id == h.id)))
        assert kinds == ["minutes", "minutes", "scene"] and list(s.scalars(select(Flag))) == []


async def test_a_photo_of_another_handovers_sheet_is_caught_by_its_qr_code(teacher, seeded, sqlite_engine) -> None:
    """Two pupils' sheets on one desk: the photo of Ánh's sheet sent for An's handover is refused, naming
    whose sheet it is (read from the QR code printed on it); a receipt sheet is refused too; the right
    sheet is taken. A photo whose code cannot be read is taken as before (test above)."""
    from tests.photo_factory import sheet_photo

    await _bangiao(teacher, "Nguyễn Văn An", photo_seed=1)
    an = _handover(sqlite_engine)
    await _bangiao(teacher, "Trần Thị Ánh", photo_seed=2)
    anh = _handover(sqlite_engine)
    await teacher.say("/bienban")
    await teacher.tap(f"BG{an.id:06d}")
    await teacher.tap("Gửi ảnh biên bản")
    await teacher.photo(sheet_photo(f"BG{anh.id:06d}", seed=3))
    assert f"biên bản BG{anh.id:06d} (học sinh Trần Thị Ánh), không phải BG{an.id:06d}" in teacher.text
    assert "Chụp rõ cả tờ biên bản" in teacher.text  # asked again
    await teacher.photo(sheet_photo(f"TN{seeded['hp']:06d}", seed=4))
    assert f"biên bản nhận máy TN{seeded['hp']:06d}" in teacher.text
    await teacher.photo(sheet_photo(f"BG{an.id:06d}", seed=5))
    assert f"Đã nhận ảnh biên bản đã ký của bàn giao BG{an.id:06d}" in teacher.text
    assert _handover(sqlite_engine).id == anh.id
    with Session(sqlite_engine) as s:
        assert s.get(Handover, an.id).minutes_signed_at is not None
        assert s.get(Handover, anh.id).minutes_signed_at is None


async def test_a_signed_sheet_sent_without_a_command_files_itself(teacher, principal, seeded, sqlite_engine, store):
    """The teacher just sends the photo of the signed sheet: its QR code says which handover, so it is recorded
    with nothing to choose. A photo without a code of this school is answered as before and leaves no file."""
    from tests.photo_factory import sheet_photo

    await _bangiao(teacher, "Nguyễn Văn An", photo_seed=1)
    an = _handover(sqlite_engine)
    await teacher.photo(sheet_photo(f"BG{an.id:06d}", seed=6))
    assert f"Đã nhận ảnh biên bản đã ký của bàn giao BG{an.id:06d}" in teacher.text
    assert _handover(sqlite_engine).minutes_signed_at is not None
    files = {p.name for p in store.media_dir.rglob("*.jpg")}
    await teacher.photo(phone_jpeg(77))  # a photo with no code
    assert "Hiện bạn không điền mục nào cần ảnh" in teacher.text and "mã QR" in teacher.text
    await teacher.photo(sheet_photo("BG999999", seed=8))  # no such handover in this school
    assert "Đã nhận ảnh biên bản" not in teacher.text
    assert {p.name for p in store.media_dir.rglob("*.jpg")} == files  # nothing left behind
