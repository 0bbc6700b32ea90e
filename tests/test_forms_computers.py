"""/nhanmay and /taitro end to end through the engine: answers, bad inputs with a second chance, roles."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from storage.models import AuditEvent, Batch, Device, Sponsor
from tests.engine_helpers import Chat, fill, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


@pytest.fixture
async def principal(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["principal_a"])


def _batches(db) -> list[Batch]:
    with Session(db) as s:
        return list(s.scalars(select(Batch).order_by(Batch.id)))


def _serials(db) -> list[str]:
    with Session(db) as s:
        return list(s.scalars(select(Device.serial).order_by(Device.serial)))


async def test_nhanmay_records_a_programme_batch_with_serials(principal, sqlite_engine, sqlite_world) -> None:
    await principal.say("/nhanmay")
    assert "Ngày nhận máy" in principal.text and principal.has_option("Hôm nay (17/11/2021)")
    await principal.tap("Hôm nay")
    assert "Số lượng" in principal.text
    await fill(principal, "3", "tap:xách tay", "Dell Latitude 3420", "tap:Mới")
    assert "Số sê-ri" in principal.text
    await principal.say("dl-001\nDL-002, dl-003")
    assert "Kiểm tra lại" in principal.text
    for shown in (
        "17/11/2021",
        "Dell Latitude 3420",
        "Máy tính xách tay (laptop)",
        "Mới",
        "DL-001, DL-002, DL-003 (3 máy)",
    ):
        assert shown in principal.text
    await principal.tap("Lưu")
    assert (
        "Đã ghi nhận lô máy" in principal.text and "3 máy tính xách tay (laptop) Dell Latitude 3420" in principal.text
    )
    [batch] = _batches(sqlite_engine)
    assert (batch.school_id, batch.source, batch.quantity, batch.received_on, batch.condition) == (
        sqlite_world.school_a,
        "programme",
        3,
        date(2021, 11, 17),
        "Mới",
    )
    assert _serials(sqlite_engine) == ["DL-001", "DL-002", "DL-003"]


async def test_nhanmay_bad_inputs_get_a_second_chance(principal, sqlite_engine) -> None:
    await principal.say("/nhanmay")
    await principal.say("18/11/2021")
    assert "tương lai" in principal.text and "Ngày nhận máy" in principal.text
    await principal.say("31/02/2021")
    assert "không có trên lịch" in principal.text
    await principal.say("12/11/2021")
    for bad, reason in (("0", "từ 1 trở lên"), ("-5", "từ 1 trở lên"), ("10001", "quá lớn"), ("mười", "số nguyên")):
        await principal.say(bad)
        assert reason in principal.text, bad
        assert "Số lượng" in principal.text  # the same question again
    await principal.say("2")
    await principal.say("máy chiếu")  # not one of the options
    assert "không khớp lựa chọn nào" in principal.text
    await principal.tap_key("deadbeef.0")  # a stale button
    assert "hết hạn" in principal.text
    await principal.say("may tinh ban")  # typed without accents
    assert "Hãng và model" in principal.text
    await fill(principal, "HP ProDesk 400", "tap:Khác")
    assert "Mô tả tình trạng" in principal.text
    await principal.say("Đã qua sử dụng, thay pin mới")
    await principal.say("HP1, HP1")
    assert "HP1 bị nhập trùng" in principal.text
    await principal.say("HP1")
    assert "1 số sê-ri nhưng số lượng máy là 2" in principal.text
    await principal.say("HP1, HP 2")
    assert "HP 2" in principal.text and "không hợp lệ" in principal.text
    await principal.tap("Bỏ qua")
    await principal.tap("Lưu")
    [batch] = _batches(sqlite_engine)
    assert (batch.device_type, batch.condition, batch.quantity, batch.received_on) == (
        "desktop",
        "Đã qua sử dụng, thay pin mới",
        2,
        date(2021, 11, 12),
    )
    assert _serials(sqlite_engine) == []


async def test_serial_already_recorded_is_named(eng, principal, sqlite_engine, sqlite_world) -> None:
    await fill(
        principal, "/nhanmay", "tap:Hôm nay", "2", "tap:bảng", "Samsung Tab A7", "tap:Mới", "SN-1, SN-2", "tap:Lưu"
    )
    other = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    await fill(other, "/nhanmay", "tap:Hôm nay", "2", "tap:bảng", "Samsung Tab A7", "tap:Mới")
    await other.say("sn-2, SN-3")
    assert "SN-2 đã có trong hệ thống" in other.text and "Trường Tiểu học Phú Hòa 1" in other.text
    await other.say("SN-3, SN-4")
    await other.tap("Lưu")
    assert _serials(sqlite_engine) == ["SN-1", "SN-2", "SN-3", "SN-4"]


async def test_quantity_edited_after_serials_asks_serials_again(principal, sqlite_engine) -> None:
    await fill(principal, "/nhanmay", "tap:Hôm nay", "2", "tap:xách tay", "Acer", "tap:Mới", "A1, A2")
    await principal.tap("Sửa")
    await principal.tap("Số lượng")
    await principal.say("3")
    await principal.tap("Lưu")
    assert "2 số sê-ri nhưng số lượng máy là 3" in principal.text and "Số sê-ri" in principal.text
    await principal.say("A1, A2, A3")
    await principal.tap("Lưu")
    assert [b.quantity for b in _batches(sqlite_engine)] == [3]


@pytest.mark.parametrize("who", ["teacher_a", "officer"])
async def test_only_principals_record_receipts(eng, sqlite_world, sqlite_engine, who) -> None:
    chat = await Chat.linked(eng, sqlite_world.phones[who])
    for cmd in ("/nhanmay", "/taitro"):
        await chat.say(cmd)
        assert f"Lệnh {cmd} không dành cho" in chat.text
    assert _batches(sqlite_engine) == []


async def test_taitro_records_sponsor_and_batch(principal, sqlite_engine, sqlite_world) -> None:
    await principal.say("/taitro")
    await principal.say("Công ty Cổ phần <Sao Mai>")
    await principal.say("to chuc")  # a typo-free "tổ chức" without accents
    await principal.say("Trần Văn Hùng")
    await principal.say("12345")
    assert "không hợp lệ" in principal.text
    await principal.say("0913.860.438")
    await fill(principal, "5", "tap:xách tay", "Lenovo ThinkPad E14", "tap:Đã qua sử dụng - tốt", "tap:Bỏ qua")
    assert "Ngày nhận máy" in principal.text
    await principal.say("16/11/2021")
    assert "Công ty Cổ phần &lt;Sao Mai&gt;" in principal.replies[-1].text  # escaped in the HTML summary
    assert "0913 860 438" in principal.text
    await principal.tap("Lưu")
    assert "Nhà tài trợ: Công ty Cổ phần <Sao Mai>" in principal.text
    with Session(sqlite_engine) as s:
        sponsor = s.scalars(select(Sponsor)).one()
        assert (sponsor.name, sponsor.kind, sponsor.contact_name, sponsor.contact_phone, sponsor.school_id) == (
            "Công ty Cổ phần <Sao Mai>",
            "organisation",
            "Trần Văn Hùng",
            "+84913860438",
            sqlite_world.school_a,
        )
        batch = s.scalars(select(Batch)).one()
        assert (batch.source, batch.sponsor_id, batch.quantity, batch.condition, batch.received_on) == (
            "other",
            sponsor.id,
            5,
            "Đã qua sử dụng - tốt",
            date(2021, 11, 16),
        )
        assert (
            s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity.in_(["sponsor", "batch"])))
            == 2
        )


async def test_taitro_cancel_saves_nothing(principal, sqlite_engine) -> None:
    await fill(principal, "/taitro", "Ông Nguyễn Văn Tốt", "tap:Cá nhân", "Nguyễn Văn Tốt", "tap:Bỏ qua", "1")
    await principal.say("/huy")
    assert "Đã hủy" in principal.text
    with Session(sqlite_engine) as s:
        assert s.scalar(select(func.count()).select_from(Sponsor)) == 0
    assert _batches(sqlite_engine) == []


async def test_receipt_date_before_the_programme_start_is_refused(principal, sqlite_engine, programme) -> None:
    assert programme.start_date == date(2021, 9, 1)
    await principal.say("/nhanmay")
    for bad in ("01/01/2000", "31/08/2021"):
        await principal.say(bad)
        assert "trước khi chương trình «Sóng và máy tính cho em» bắt đầu (01/09/2021)" in principal.text, bad
        assert "Ngày nhận máy" in principal.text  # asked again
    await principal.say("01/09/2021")  # the first day is allowed
    assert "Số lượng" in principal.text


def test_storage_refuses_a_receipt_before_the_programme_start(sqlite_engine, sqlite_world, clock) -> None:
    from core.vocabulary import DeviceType, Source
    from storage import errors, receipts

    with Session(sqlite_engine) as s:
        with pytest.raises(errors.RecordError) as err:
            receipts.record_batch(
                s,
                school_id=sqlite_world.school_a,
                by=sqlite_world.principal_a,
                source=Source.PROGRAMME,
                sponsor_id=None,
                received_on=date(2000, 1, 1),
                quantity=1,
                device_type=DeviceType.LAPTOP,
                brand_model="Dell",
                condition="Mới",
                now=clock.now(),
                not_before=date(2021, 9, 1),
            )
    from conversations.refusals import refusal

    assert err.value.code == "before_start" and "trước khi chương trình bắt đầu (01/09/2021)" in refusal(err.value)


async def test_numbers_are_written_vietnamese_style(principal) -> None:
    await principal.say("/nhanmay")
    await principal.say("12/11/2021")
    await principal.say("20000")
    assert "Số 20.000 quá lớn (tối đa 10.000)" in principal.text


async def test_summary_shows_the_typed_condition_and_readable_serials(principal) -> None:
    await principal.say("/nhanmay")
    await fill(principal, "12/11/2021", "3", "tap:xách tay", "Dell Latitude 3420", "tap:Khác", "Trầy vỏ, pin yếu")
    await principal.say("SN1, SN2, SN3")
    assert "Tình trạng: Khác: Trầy vỏ, pin yếu" in principal.text
    assert "Khác (ghi rõ)" not in principal.text
    assert "Số sê-ri: SN1, SN2, SN3 (3 máy)" in principal.text
    assert "3: SN1" not in principal.text


def test_no_real_phone_number_is_used_as_an_example() -> None:
    """The district contact's real number (0913 860 438) must never be offered as a sample to type."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("conversations", "core", "reports", "scheduler", "storage", "bot"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"0913[ .]?860[ .]?438|913860438", text):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
