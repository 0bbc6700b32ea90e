"""The printed minutes (biên bản), read back as a district officer's PDF reader would: the text extracted with
pypdf (every diacritic intact), one page per sheet even with long names and models, and the QR code image
taken out of the PDF and decoded (zxing-cpp) to the sheet's code."""

from __future__ import annotations

import io
from datetime import date

import pypdf
import pytest
import zxingcpp
from PIL import Image

from core.programme import ProgrammeError, load_programme
from reports.minutes import (
    DeviceRow,
    HandoverSheet,
    MinutesDocument,
    ReceiptSheet,
    date_line,
    date_words,
    handover_pdf,
    place_name,
    printable,
    receipt_pdf,
)

PROGRAMME_NAME = "Sóng và máy tính cho em"


def sheet(**changes) -> HandoverSheet:
    values = dict(
        code="BG000123",
        day=date(2021, 11, 25),
        place="Thủ Dầu Một",
        district="Thành phố Thủ Dầu Một",
        school="Trường Tiểu học Phú Hòa 1",
        principal="Nguyễn Thị Lan",
        pupil="Nguyễn Văn An",
        birth_date=date(2011, 3, 4),
        class_name="5A1",
        guardian="Nguyễn Văn Bình",
        guardian_phone="0912 345 678",
        teacher="Trần Văn Minh",
        devices=(
            DeviceRow(
                kind="Máy tính xách tay (laptop)",
                model="Dell Latitude 3420",
                serial="DL-0002",
                condition="Mới",
                source=f"Chương trình “{PROGRAMME_NAME}”",
            ),
        ),
    )
    values.update(changes)
    return HandoverSheet(**values)


def pages(data: bytes) -> list[pypdf.PageObject]:
    assert data.startswith(b"%PDF-")
    return list(pypdf.PdfReader(io.BytesIO(data)).pages)


def text_of(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pages(data))


def flat(text: str) -> str:
    """Line breaks from wrapping become spaces, so a wrapped sentence can be searched as one."""
    return " ".join(text.split())


def qr_codes(page: pypdf.PageObject) -> list[str]:
    found = []
    for image in page.images:
        img = Image.open(io.BytesIO(image.data))
        found += [r.text for r in zxingcpp.read_barcodes(img)]
    return found


def test_handover_sheet_text_with_every_diacritic(programme) -> None:
    data = handover_pdf(sheet(), programme=programme)
    [page] = pages(data)
    text = page.extract_text()
    for expected in (
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Thủ Dầu Một, ngày 25 tháng 11 năm 2021",
        "BIÊN BẢN BÀN GIAO MÁY TÍNH",
        "TRƯỜNG TIỂU HỌC PHÚ HÒA 1",
        "Nguyễn Văn An",  # the pupil
        "Nguyễn Thị Lan",  # the principal
        "Nguyễn Văn Bình",
        "0912 345 678",
        "DL-0002",
        "Dell Latitude 3420",
        "Số: BG000123",
        "GIÁO VIÊN CHỦ NHIỆM",
        "Trần Văn Minh",
        "(Ký, ghi rõ họ tên)",
    ):
        assert expected in flat(text), expected
    words = flat(text)
    # The programme and the letter from the programme file, the commitments line.
    assert f"Chương trình “{PROGRAMME_NAME}” theo Công văn số 1509/PGDĐT-TCCB" in words
    assert "Bên nhận cam kết sử dụng máy đúng mục đích học tập" in words
    assert "\ufffd" not in text and "?" not in text  # nothing replaced, nothing missing


def test_qr_code_in_the_pdf_decodes_to_the_handover_code(programme) -> None:
    [page] = pages(handover_pdf(sheet(code="BG004567"), programme=programme))
    assert qr_codes(page) == ["BG004567"]


def test_long_names_model_and_three_serials_stay_on_one_page(programme) -> None:
    long_model = (
        "Lenovo ThinkPad E14 Gen 4 Intel Core i5-1235U 16GB DDR4 512GB SSD NVMe 14 inch FHD IPS "
        "bản dành cho giáo dục có bàn phím tiếng Việt và túi chống sốc"
    )
    serials = ("PF3ABCD1234567890", "PF3ABCD1234567891", "PF3ABCD1234567892")
    devices = tuple(
        DeviceRow(
            kind="Máy tính xách tay (laptop)",
            model=long_model,
            serial=s,
            condition="Đã qua sử dụng - tốt, có vết xước nhẹ ở nắp máy",
            source="Nhà tài trợ: Công ty Cổ phần Công nghệ và Truyền thông Bình Dương Xanh",
        )
        for s in serials
    )
    long = sheet(
        pupil="Tôn Nữ Hoàng Phương Thảo Nguyên Khánh",
        guardian="Công Tằng Tôn Nữ Thị Hoàng Yến Nhi",
        principal="Nguyễn Huỳnh Thị Phương Mai Anh",
        school="Trường Trung học cơ sở Nguyễn Văn Cừ phường Phú Hòa thành phố Thủ Dầu Một",
        devices=devices,
    )
    data = handover_pdf(long, programme=programme)
    [page] = pages(data)  # exactly one page
    words = flat(page.extract_text())
    for s in serials:
        assert s in words
    assert "Tôn Nữ Hoàng Phương Thảo Nguyên Khánh" in words
    assert "Lenovo ThinkPad E14 Gen 4" in words
    assert qr_codes(page) == ["BG000123"]

    receipt = ReceiptSheet(
        code="TN000042",
        day=date(2021, 11, 15),
        place="Thủ Dầu Một",
        district="Thành phố Thủ Dầu Một",
        school=long.school,
        principal=long.principal,
        giver="Công ty Cổ phần Công nghệ và Truyền thông Bình Dương Xanh",
        giver_contact="Lê Văn Tài, điện thoại 0913 860 438",
        devices=devices,
        quantity=3,
    )
    [page] = pages(receipt_pdf(receipt, programme=programme))
    words = flat(page.extract_text())
    assert "BIÊN BẢN TIẾP NHẬN MÁY TÍNH" in words and "tổng số: 3 máy" in words
    assert all(s in words for s in serials) and "Thủ Dầu Một, ngày 15 tháng 11 năm 2021" in words
    assert qr_codes(page) == ["TN000042"]


def test_a_long_device_list_flows_onto_more_pages_with_the_code_on_each(programme) -> None:
    devices = tuple(
        DeviceRow(
            kind="Máy tính bảng", model="Samsung Galaxy Tab A8", serial=f"R9XT{i:05d}", condition="Mới", source="x"
        )
        for i in range(60)
    )
    receipt = ReceiptSheet(
        code="TN000007",
        day=date(2021, 11, 15),
        place="Thủ Dầu Một",
        district="Thành phố Thủ Dầu Một",
        school="Trường Tiểu học Phú Hòa 1",
        principal="Nguyễn Thị Lan",
        giver="Phòng Giáo dục và Đào tạo Thủ Dầu Một",
        giver_contact=None,
        devices=devices,
        quantity=60,
    )
    all_pages = pages(receipt_pdf(receipt, programme=programme))
    assert len(all_pages) >= 2
    text = "\n".join(p.extract_text() for p in all_pages)
    assert all(f"R9XT{i:05d}" in text for i in range(60))
    assert all(qr_codes(p) == ["TN000007"] for p in all_pages)  # every page can be matched to its sheet
    assert text.count("Số sê-ri") == len(all_pages)  # the table header repeats on each page


def test_one_sheet_per_page_in_a_school_document(programme) -> None:
    doc = MinutesDocument(programme)
    for i in range(1, 4):
        doc.add_handover(sheet(code=f"BG{i:06d}", pupil=f"Học Sinh Số {['Một', 'Hai', 'Ba'][i - 1]}"))
    all_pages = pages(doc.output())
    assert [qr_codes(p) for p in all_pages] == [["BG000001"], ["BG000002"], ["BG000003"]]
    assert "Học Sinh Số Hai" in all_pages[1].extract_text()


def test_date_and_place_words(programme) -> None:
    assert date_words(date(2021, 11, 25)) == "ngày 25 tháng 11 năm 2021"
    # Official papers: a zero before days under 10 and the months 1 and 2 only.
    assert date_words(date(2022, 2, 5)) == "ngày 05 tháng 02 năm 2022"
    assert date_words(date(2021, 3, 9)) == "ngày 09 tháng 3 năm 2021"
    assert date_line("Dĩ An", date(2021, 12, 1)) == "Dĩ An, ngày 01 tháng 12 năm 2021"
    assert place_name(programme, "TDM", "Thành phố Thủ Dầu Một") == "Thủ Dầu Một"  # from [minutes.places]
    assert place_name(programme, "DA", "Thành phố Dĩ An") == "Dĩ An"
    assert place_name(programme, "BC", "Huyện Bàu Bàng") == "Bàu Bàng"
    assert place_name(programme, "Q1", "Quận 1") == "Quận 1"  # a numbered district keeps its word


def test_characters_the_font_lacks_become_question_marks() -> None:
    # Decomposed input (as some phones send it) is composed, not lost.
    assert printable("Nguye\u0302\u0303n") == "Nguyễn"
    assert printable("Công ty 🍀 ABC 株式会社") == "Công ty ? ABC ????"


@pytest.mark.parametrize(
    "line,message",
    [
        ('basis = "Theo {congvan}"', "{congvan}"),
        ('commitments = "Cam kết {programme"', "dấu ngoặc"),
        ("minutes_signed_days = 0", "minutes_signed_days"),
    ],
)
def test_a_bad_minutes_section_stops_start_up_with_the_field_named(tmp_path, line, message) -> None:
    from pathlib import Path

    source = Path("bot/programme.toml").read_text(encoding="utf-8")
    if line.startswith("minutes_signed_days"):
        text = source.replace("minutes_signed_days = 3", line)
    else:
        key = line.split(" = ")[0]
        text = "\n".join((line if ln.startswith(f"{key} = ") else ln) for ln in source.splitlines())
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgrammeError) as err:
        load_programme(path)
    assert message in str(err.value)


def test_a_district_rewords_its_minutes(tmp_path) -> None:
    from pathlib import Path

    source = Path("bot/programme.toml").read_text(encoding="utf-8")
    text = source.replace('title = "BIÊN BẢN BÀN GIAO MÁY TÍNH"', 'title = "BIÊN BẢN GIAO NHẬN THIẾT BỊ HỌC TẬP"')
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    custom = load_programme(path)
    words = flat(text_of(handover_pdf(sheet(), programme=custom)))
    assert "BIÊN BẢN GIAO NHẬN THIẾT BỊ HỌC TẬP" in words and "BIÊN BẢN BÀN GIAO MÁY TÍNH" not in words
