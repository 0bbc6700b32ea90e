"""The workbook, opened with openpyxl as the district officer's spreadsheet program would: sheets, headers,
values, date formats, formula injection kept as text, scope, photos in the ZIP, atomic writes."""

from __future__ import annotations

import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter

import reports.export as export_module
from core.phones import display_phone
from reports.export import (
    HANDOVER_COLUMNS,
    NEEDS_COLUMNS,
    RECEIPT_COLUMNS,
    export_workbook,
    phone_cell,
    photo_file_name,
    write_export,
)
from storage.db import session_scope
from storage.scope import Scope
from tests.test_reports_data import INJECTIONS, OUTSIDER, OUTSIDER_SPONSOR, seed_reports

SHEETS = ["Nhu cầu", "Tiếp nhận", "Bàn giao", "Tổng hợp"]


@pytest.fixture
def seeded(db_engine, world, clock, programme, tmp_path):
    return seed_reports(db_engine, world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")


def export(engine, scope: Scope, out: Path, programme, now, **kw):
    with session_scope(engine) as s:
        return write_export(s, scope=scope, out=out, programme=programme, now=now, **kw)


def rows(ws) -> list[list]:
    return [[c.value for c in row] for row in ws.iter_rows()]


def by_header(ws) -> list[dict]:
    table = rows(ws)
    return [dict(zip(table[0], r)) for r in table[1:] if any(v is not None for v in r)]


def width(ws, col: int) -> float:
    """Column width; XlsxWriter writes neighbouring columns of equal width as one <col min max>."""
    letter = get_column_letter(col)
    for dim in ws.column_dimensions.values():
        if dim.min and dim.max and dim.min <= col <= dim.max:
            return dim.width
    return ws.column_dimensions[letter].width


def all_values(wb) -> str:
    return "\n".join(str(v) for ws in wb.worksheets for r in rows(ws) for v in r if v is not None)


def test_district_workbook(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    out = tmp_path / "tong-hop.xlsx"
    result = export(db_engine, Scope(district_id=world.district_id), out, programme, clock.now())
    assert result.path == out and (result.schools, result.students, result.batches, result.handovers) == (2, 9, 3, 4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == SHEETS
    for ws, columns in zip(wb.worksheets, (NEEDS_COLUMNS, RECEIPT_COLUMNS, HANDOVER_COLUMNS)):
        assert rows(ws)[0] == [c.header.vi for c in columns]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
    assert rows(wb["Nhu cầu"])[0] == [
        "Mã định danh",
        "Họ và tên",
        "Ngày sinh",
        "Giới tính",
        "Lớp",
        "Trường",
        "Đối tượng",
        "Lý do (khó khăn khác)",
        "Nhu cầu",
        "Người giám hộ",
        "SĐT",
        "Trạng thái duyệt",
        "Ngày đăng ký",
        "Phụ huynh đồng ý ngày",
    ]
    assert wb["Nhu cầu"].auto_filter.ref == "A1:N10"

    needs = {r["Mã định danh"]: r for r in by_header(wb["Nhu cầu"])}
    assert len(needs) == 9
    duc = needs["079215000002"]
    assert duc["Họ và tên"] == "Trần Văn Đức" and duc["Giới tính"] == "Nam" and duc["Lớp"] == "5B"
    assert duc["Đối tượng"] == "Hộ cận nghèo" and duc["Nhu cầu"] == "Sóng internet"
    assert duc["Trạng thái duyệt"] == "Đã duyệt" and duc["Trường"] == "Trường Tiểu học Phú Hòa 1"
    assert duc["SĐT"] == "0912 345 678" and duc["Người giám hộ"] == "Nguyễn Văn Ba"
    assert duc["Ngày sinh"] == datetime(2012, 3, 9)
    assert duc["Ngày đăng ký"] == datetime(2021, 11, 17, 8, 0)  # 01:00 UTC shown in Asia/Ho_Chi_Minh
    statuses = {r["Trạng thái duyệt"] for r in needs.values()}
    assert {"Chờ duyệt", "Đã duyệt", "Từ chối", "Đã rút"} <= statuses
    assert needs["079215000003"]["Nhu cầu"] == "Cả hai" and needs["079215000001"]["Nhu cầu"] == "Máy tính"
    assert needs["079215000001"]["Giới tính"] == "Nữ"
    assert needs["079215000007"]["SĐT"] is None
    assert duc["Phụ huynh đồng ý ngày"] == "Chưa ghi nhận"  # registered without the consent step

    # Real date cells with Vietnamese formats.
    ws = wb["Nhu cầu"]
    birth, registered = ws["C2"], ws["M2"]
    assert birth.is_date and birth.number_format == "dd/mm/yyyy"
    assert registered.is_date and registered.number_format == "dd/mm/yyyy hh:mm"
    assert ws["A2"].data_type == "s" and isinstance(ws["A2"].value, str)  # leading zero of the code kept

    receipts = by_header(wb["Tiếp nhận"])
    assert [r["Nguồn"] for r in receipts] == ["Chương trình", "Chương trình", "Nhà tài trợ khác"]
    sponsor = receipts[2]
    assert sponsor["Nhà tài trợ"] == "=1+2 Công ty ABC" and sponsor["Người liên hệ"] == "Trần Thị Bích"
    assert sponsor["SĐT"] == "0908 111 222" and sponsor["Ngày nhận"] == datetime(2021, 11, 12)
    assert sponsor["Số lượng"] == 3 and sponsor["Đã bàn giao"] == 1 and sponsor["Loại máy"] == "Máy tính bảng"
    assert receipts[1]["Hãng - model"] == "Dell Latitude 3420" and receipts[1]["Tình trạng"] == "Mới 100%"
    assert wb["Tiếp nhận"]["F2"].number_format == "dd/mm/yyyy"

    handovers = {r["Mã bàn giao"]: r for r in by_header(wb["Bàn giao"])}
    late = handovers[f"BG{seeded.handovers['late']:06d}"]
    assert late["Học sinh"] == "Nguyễn Thị Ánh" and late["Mã định danh"] == "079215000001"
    assert late["Số sê-ri"] == "DL3420-0001" and late["Loại máy"] == "Máy tính xách tay (laptop)"
    assert late["Ngày bàn giao"] == datetime(2021, 11, 15) and late["Hạn cập nhật CSDL"] == datetime(2021, 11, 16)
    assert late["Người ghi nhận"] == "Trần Văn Minh" and late["Đã cập nhật CSDL lúc"] is None
    hid = seeded.handovers["late"]
    assert late["Ảnh (tên tệp)"] == f"BG{hid:06d}_079215000001_1.jpg; BG{hid:06d}_079215000001_2_bienban.jpg"
    assert late["Cờ cảnh báo"] == "Thời điểm chụp bất thường — đã xử lý"
    confirmed = handovers[f"BG{seeded.handovers['confirmed']:06d}"]
    assert confirmed["Đã cập nhật CSDL lúc"] == datetime(2021, 11, 15, 9, 30)
    assert confirmed["Cờ cảnh báo"] == f"Ảnh đã dùng cho bàn giao khác (BG{hid:06d})"
    assert confirmed["Trạng thái"] == "Đã bàn giao"
    hb = wb["Bàn giao"]
    assert hb["I2"].number_format == "dd/mm/yyyy" and hb["L3"].number_format == "dd/mm/yyyy hh:mm"

    summary = rows(wb["Tổng hợp"])
    head = summary[0]
    assert head[:8] == [
        "Mã trường",
        "Trường",
        "Cấp học",
        "Hiệu trưởng",
        "SĐT hiệu trưởng",
        "Học sinh đăng ký",
        "Đã duyệt",
        "Chờ duyệt",
    ]
    assert "Đã duyệt: Hộ nghèo" in head and "Nhu cầu: Sóng internet" in head and "Trễ CSDL: chưa cập nhật" in head
    a = dict(zip(head, summary[2]))
    assert a["Mã trường"] == "TH-PHUHOA1" and a["Cấp học"] == "Tiểu học" and a["Hiệu trưởng"] == "Nguyễn Thị Lan"
    assert (
        a["Học sinh đăng ký"],
        a["Đã duyệt"],
        a["Chờ duyệt"],
        a["Máy nhận (chương trình)"],
        a["Máy nhận (nhà tài trợ khác)"],
        a["Đã bàn giao"],
        a["Chờ bàn giao"],
        a["Trễ CSDL: chưa cập nhật"],
        a["Ảnh bị gắn cờ"],
        a["Chốt báo cáo nhu cầu lúc"],
    ) == (5, 4, 1, 5, 3, 3, 5, 1, 1, None)
    b = dict(zip(head, summary[1]))
    assert b["Chốt báo cáo nhu cầu lúc"] == datetime(2021, 11, 16, 10, 0)
    total = dict(zip(head, summary[3]))
    assert total["Trường"] == "Tổng cộng" and total["Học sinh đăng ký"] == 7 and total["Chờ bàn giao"] == 6
    assert wb["Tổng hợp"].auto_filter.ref == f"A1:{get_column_letter(len(head))}3"  # the total row stays visible
    assert summary[5][0] == "Số liệu lúc" and summary[5][1] == datetime(2021, 11, 17, 8, 0)

    # Widths fit the longest value (capped), not a fixed guess.
    for ws in wb.worksheets[:3]:
        for col, values in enumerate(zip(*rows(ws)), start=1):
            # a CR is stored as the 7-character escape _x000D_ but shows as one character
            longest = max(
                len(str(v).replace("_x000D_", "\r")) if not isinstance(v, datetime) else 10
                for v in values
                if v is not None
            )
            assert width(ws, col) >= min(longest, export_module.MAX_WIDTH), (ws.title, col)
    assert OUTSIDER not in all_values(wb) and OUTSIDER_SPONSOR not in all_values(wb)


def test_formula_injection_is_written_as_text(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    out = tmp_path / "x.xlsx"
    export(db_engine, Scope(district_id=world.district_id), out, programme, clock.now())
    wb = openpyxl.load_workbook(out)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    suspicious = [c for c in cells if c.value[:1] in ("=", "+", "-", "@", "\t", "\r") or c.value.startswith("_x000D_")]
    found = {c.value for c in suspicious}
    assert INJECTIONS["full_name"] in found and INJECTIONS["guardian_name"] in found
    assert INJECTIONS["hardship_reason"] in found and INJECTIONS["class_name"] in found
    assert INJECTIONS["condition"] in found and "=1+2 Công ty ABC" in found
    assert any(v.endswith("Samsung Galaxy Tab A7") for v in found)  # CR is stored escaped as _x000D_
    for c in suspicious:
        assert c.data_type == "s", (c.coordinate, c.value)  # a string, not a formula ('f')
        assert c.quotePrefix, (c.coordinate, c.value)  # Excel keeps it text even when the cell is edited
    # The raw sheet XML has no formula element at all.
    with zipfile.ZipFile(out) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name)
    # A formula-looking name in the needs sheet is the exact text the teacher typed.
    ws = wb["Nhu cầu"]
    names = [r[1] for r in rows(ws)]
    assert INJECTIONS["full_name"] in names


def test_principal_cannot_export_another_school(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    from storage.models import Staff

    out = tmp_path / "a.xlsx"
    with session_scope(db_engine) as s:
        scope = Scope.for_staff(s.get(Staff, world.principal_a))  # what /xuatfile uses for the principal
    assert scope == Scope(district_id=world.district_id, school_id=world.school_a)
    result = export(db_engine, scope, out, programme, clock.now())
    assert (result.schools, result.students, result.batches, result.handovers) == (1, 7, 2, 3)
    wb = openpyxl.load_workbook(out)
    text = all_values(wb)
    for name in ("Trường THCS Chu Văn An", "Bùi Gia Huy", "HP ProDesk", OUTSIDER, OUTSIDER_SPONSOR):
        assert name not in text
    assert {r["Trường"] for r in by_header(wb["Nhu cầu"])} == {"Trường Tiểu học Phú Hòa 1"}
    assert [r[1] for r in rows(wb["Tổng hợp"])[1:2]] == ["Trường Tiểu học Phú Hòa 1"]
    assert "Tổng cộng" not in text  # one school: no total row


def test_other_district_sees_only_its_own(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    out = tmp_path / "da.xlsx"
    result = export(db_engine, Scope(district_id=world.other_district_id), out, programme, clock.now())
    assert (result.schools, result.students, result.batches, result.handovers) == (1, 1, 1, 1)
    text = all_values(openpyxl.load_workbook(out))
    assert OUTSIDER in text and "Phú Hòa" not in text and "Chu Văn An" not in text


def test_streams_in_chunks_on_both_databases(db_engine, world, seeded, clock, programme, tmp_path, monkeypatch) -> None:
    """Chunks of two rows: photos and flags are read per chunk and still land on the right handover."""
    whole = tmp_path / "whole.xlsx"
    export(db_engine, Scope(district_id=world.district_id), whole, programme, clock.now())
    monkeypatch.setattr(export_module, "CHUNK", 2)
    chunked = tmp_path / "chunked.xlsx"
    export(db_engine, Scope(district_id=world.district_id), chunked, programme, clock.now())
    a, b = openpyxl.load_workbook(whole), openpyxl.load_workbook(chunked)
    for name in SHEETS:
        assert rows(a[name]) == rows(b[name])


def test_with_photos_writes_a_zip(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    media = tmp_path / "media"
    seeded.photo_files[1].unlink()  # the minutes of the late handover went missing on disk
    result = export(
        db_engine,
        Scope(district_id=world.district_id, school_id=world.school_a),
        tmp_path / "out" / "phu-hoa.xlsx",
        programme,
        clock.now(),
        with_photos=True,
        media_dir=media,
    )
    assert result.path == tmp_path / "out" / "phu-hoa.zip"
    assert (result.photos, result.missing_photos) == (2, 1)
    hid, hc = seeded.handovers["late"], seeded.handovers["confirmed"]
    with zipfile.ZipFile(result.path) as z:
        names = sorted(z.namelist())
        assert names == sorted(
            ["phu-hoa.xlsx", f"photos/BG{hid:06d}_079215000001_1.jpg", f"photos/BG{hc:06d}_079215000003_1.jpg"]
        )
        assert z.read(f"photos/BG{hid:06d}_079215000001_1.jpg") == seeded.photo_files[0].read_bytes()
        z.extract("phu-hoa.xlsx", tmp_path / "x")
    wb = openpyxl.load_workbook(tmp_path / "x" / "phu-hoa.xlsx")
    photos = {r["Mã bàn giao"]: r["Ảnh (tên tệp)"] for r in by_header(wb["Bàn giao"])}
    assert photos[f"BG{hid:06d}"] == (
        f"BG{hid:06d}_079215000001_1.jpg; BG{hid:06d}_079215000001_2_bienban.jpg (thiếu tệp)"
    )
    # every name the sheet gives (that exists) is a file in photos/
    listed = {n.removesuffix(" (thiếu tệp)") for v in photos.values() if v for n in v.split("; ")}
    assert {f"photos/{n}" for n in listed} - set(names) == {f"photos/BG{hid:06d}_079215000001_2_bienban.jpg"}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_with_photos_never_reads_outside_media(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    from sqlalchemy import update

    from storage.models import Photo

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the zip")
    with session_scope(db_engine) as s:
        s.execute(update(Photo).values(path="../secret.jpg"))
    result = export(
        db_engine,
        Scope(district_id=world.district_id),
        tmp_path / "p.zip",
        programme,
        clock.now(),
        with_photos=True,
        media_dir=tmp_path / "media",
    )
    assert result.photos == 0 and result.missing_photos == 3
    with zipfile.ZipFile(result.path) as z:
        assert z.namelist() == ["p.xlsx"]


def test_failure_leaves_no_file(db_engine, world, seeded, clock, programme, tmp_path, monkeypatch) -> None:
    out = tmp_path / "x.xlsx"
    out.write_bytes(b"yesterday's export")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "_write_handovers", boom)
    with pytest.raises(RuntimeError):
        export(db_engine, Scope(district_id=world.district_id), out, programme, clock.now())
    assert out.read_bytes() == b"yesterday's export"  # the old file is intact, no half-written one
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_english_headers_and_empty_scope(db_engine, world, clock, programme, tmp_path) -> None:
    out = tmp_path / "empty.xlsx"
    with session_scope(db_engine) as s:
        path = export_workbook(
            s, scope=Scope(district_id=world.district_id), out=out, programme=programme, now=clock.now(), lang="en"
        )
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Needs", "Receipts", "Handovers", "Summary"]
    assert rows(wb["Needs"]) == [[c.header.en for c in NEEDS_COLUMNS]]
    assert wb["Needs"].auto_filter.ref == "A1:N2" and wb["Needs"].freeze_panes == "A2"
    summary = rows(wb["Summary"])
    assert [r[0] for r in summary[1:3]] == ["THCS-CHUVANAN", "TH-PHUHOA1"]  # schools listed even with no data
    assert summary[1][5:8] == [0, 0, 0] and summary[3][1] == "Total"


def test_photo_file_names_are_safe() -> None:
    assert (
        photo_file_name(handover_id=7, student_code="0792/../x", index=2, kind="minutes", suffix=".jpg")
        == "BG000007_0792x_2_bienban.jpg"
    )
    assert (
        photo_file_name(handover_id=7, student_code="../", index=1, kind="scene", suffix=".exe;rm") == "BG000007_1.jpg"
    )


@pytest.mark.parametrize(
    "phone",
    ["+84912345678", "+84351234567", "+84789999000", "+84561234567", "+84838123456", "+842743822222", "+12025550123"],
)
def test_phone_cell_matches_display_phone(phone) -> None:
    assert phone_cell(phone) == display_phone(phone)
    assert phone_cell(None) is None and phone_cell("") is None


def test_dates_are_not_shifted(db_engine, world, seeded, clock, programme, tmp_path) -> None:
    """A calendar date (birth, handover) is the same day in the sheet whatever the server's zone."""
    out = tmp_path / "d.xlsx"
    export(db_engine, Scope(district_id=world.district_id), out, programme, clock.now())
    ws = openpyxl.load_workbook(out)["Bàn giao"]
    days = {r["Ngày bàn giao"].date() for r in by_header(ws)}
    assert days == {date(2021, 11, 12), date(2021, 11, 14), date(2021, 11, 15), date(2021, 11, 16)}
