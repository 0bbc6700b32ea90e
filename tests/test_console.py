"""The console channel: /dangky and /bangiao in a terminal, options numbered, /anh for a photo."""

from __future__ import annotations

import io
from datetime import date

from sqlalchemy import select
from sqlmodel import Session

from bot.console import ConsoleChannel
from core.vocabulary import DeviceType, ReviewStatus, Source
from storage import receipts
from storage.db import session_scope
from storage.models import Handover, Student
from storage.photos import PhotoStore
from tests.engine_helpers import make_engine
from tests.photo_factory import phone_jpeg


async def test_console_dangky_then_bangiao(sqlite_engine, sqlite_world, programme, clock, tmp_path) -> None:
    store = PhotoStore(tmp_path / "media")
    eng = make_engine(sqlite_engine, programme, clock, photos=store, media_dir=store.media_dir)
    user = "console:0901000002"
    eng.link_directly(channel="console", external_id=user, chat_id="console", phone="0901000002")
    console = ConsoleChannel(eng.handle, user_id=user, clock=clock, media_dir=tmp_path)
    out = io.StringIO()
    # Options are answered by their number as shown: 1 = the parent agreed, 1 = Nam, 1 = Hộ nghèo, 3 = Cả hai,
    # 1 = Bỏ qua, 1 = Lưu.
    await console.run(
        ["/dangky", "1", "Nguyễn Văn An", "05/09/2012", "4A1", "0123456789", "1", "1", "3", "1", "1", "1", "1"], out
    )
    text = out.getvalue()
    assert "  1. Nam" in text and "Đã lưu" in text
    with session_scope(sqlite_engine) as s:
        student = s.exec(select(Student)).scalars().one()
        assert (student.gender, student.category, student.need) == ("male", "poor", "both")
        student.status = ReviewStatus.APPROVED
        receipts.record_batch(
            s,
            school_id=sqlite_world.school_a,
            by=sqlite_world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=date(2021, 11, 15),
            quantity=2,
            device_type=DeviceType.LAPTOP,
            brand_model="Dell Latitude 3420",
            condition="mới",
            serials=[],
            now=clock.now(),
        )
    photo = tmp_path / "ban-giao.jpg"
    photo.write_bytes(phone_jpeg(3))
    out = io.StringIO()
    await console.run(["/bangiao", "an", "1", "1", "1", f"/anh {photo}", "/anh /khong/co/anh.jpg", "Xong"], out)
    text = out.getvalue()
    assert "Không tìm thấy tệp ảnh" in text and "Đã nhận 1 ảnh" in text
    summary_at = text.rfind("biên bản")
    assert summary_at > 0
    out = io.StringIO()
    await console.run(["bỏ qua", "lưu"], out)
    assert "Đã ghi nhận bàn giao" in out.getvalue()
    with Session(sqlite_engine) as s:
        assert len(s.scalars(select(Handover)).all()) == 1


async def test_console_sends_a_class_list_with_tep(sqlite_engine, sqlite_world, programme, clock, tmp_path) -> None:
    from tests.import_files import good_row, xlsx

    eng = make_engine(sqlite_engine, programme, clock, media_dir=tmp_path / "media")
    user = "console:0901000002"
    eng.link_directly(channel="console", external_id=user, chat_id="console", phone="0901000002")
    console = ConsoleChannel(eng.handle, user_id=user, clock=clock, media_dir=tmp_path)
    path = tmp_path / "lop 4A1.xlsx"
    path.write_bytes(xlsx([good_row(1), good_row(2, B="Trần Thị Bé")]))
    out = io.StringIO()
    await console.run(["/tep khong-co.xlsx", f"/tep {path}", "1"], out)  # 1 = Lưu
    text = out.getvalue()
    assert "Không tìm thấy tệp" in text and "2 em hợp lệ, 0 dòng có lỗi" in text and "Đã lưu 2 em" in text
    with session_scope(sqlite_engine) as s:
        assert len(s.exec(select(Student)).scalars().all()) == 2
