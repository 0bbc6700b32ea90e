"""Class-list files for the import tests, built the way schools' files really look: a merged title row above
the header, date cells, formulas with cached values (xlsxwriter writes them), numbers where text belongs."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from typing import Any

import xlsxwriter

HEAD = [
    "STT",
    "Họ và tên",
    "Ngày sinh",
    "Lớp",
    "Mã định danh",
    "Giới tính",
    "Đối tượng",
    "Lý do",
    "Nhu cầu",
    "Phụ huynh",
    "SĐT",
    "Ghi chú",
]
# Columns: A STT, B name, C birth, D class, E code, F gender, G group, H reason, I need, J guardian, K phone, L note


def good_row(n: int = 1, **changes: Any) -> list[Any]:
    """A row that passes at a primary school on 17/11/2021 (column letter -> new value in ``changes``)."""
    row: list[Any] = [
        n,
        "Nguyễn Văn An",
        "05/09/2012",
        "4A1",
        f"{n:010d}",
        "Nam",
        "Hộ nghèo",
        None,
        "Máy tính",
        None,
        None,
        None,
    ]
    for letter, value in changes.items():
        row[ord(letter) - ord("A")] = value
    return row


def names(n: int) -> list[str]:
    """n distinct Vietnamese names (family x middle x given)."""
    family = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
    middle = ["Văn", "Thị", "Minh", "Ngọc", "Thanh", "Quốc", "Thu", "Gia", "Bảo", "Hữu"]
    given = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Khánh", "Lan", "Mai", "Nam", "Oanh", "Phúc", "Quân", "Sơn"]
    out = []
    for i in range(n):
        out.append(f"{family[i % 10]} {middle[(i // 10) % 10]} {given[(i // 100) % 14]}")
    return out


def xlsx(rows: list[list[Any]], *, head: list[str] = HEAD, title: bool = True, sheet: str = "Lớp 4A1") -> bytes:
    """An XLSX: optional merged title rows, the header, the rows. A value ``("=F", cached)`` is a formula with its
    cached value; datetimes/dates become date cells; numbers stay numbers."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet(sheet)
    fmt_date = wb.add_format({"num_format": "dd/mm/yyyy"})
    r = 0
    if title:
        ws.merge_range(0, 0, 0, len(head) - 1, "TRƯỜNG TIỂU HỌC PHÚ HÒA 1 — DANH SÁCH HỌC SINH", None)
        ws.merge_range(1, 0, 1, len(head) - 1, "Năm học 2021–2022", None)
        r = 3  # one blank row too
    for c, h in enumerate(head):
        ws.write_string(r, c, h)
    for row in rows:
        r += 1
        for c, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, tuple):
                ws.write_formula(r, c, v[0], None, v[1])
            elif isinstance(v, datetime | date):
                ws.write_datetime(r, c, v if isinstance(v, datetime) else datetime(v.year, v.month, v.day), fmt_date)
            elif isinstance(v, bool):
                ws.write_boolean(r, c, v)
            elif isinstance(v, int | float):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, v)
    wb.close()
    return buf.getvalue()


def first_data_row(title: bool = True) -> int:
    """Sheet row number of the first pupil written by ``xlsx``."""
    return 5 if title else 2


def csv_bytes(rows: list[list[Any]], *, head: list[str] = HEAD, sep: str = ";", encoding: str = "utf-8-sig") -> bytes:
    lines = [sep.join(head)] + [sep.join("" if v is None else str(v) for v in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def zip_bomb() -> bytes:
    """A ZIP that looks like an XLSX and unpacks one entry to 200 MB of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(200):
                fh.write(chunk)
    return buf.getvalue()


def with_entity_bomb(data: bytes) -> bytes:
    """The same XLSX with a billion-laughs DOCTYPE in its shared strings (or sheet) XML."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename in ("xl/sharedStrings.xml", "xl/worksheets/sheet1.xml"):
                body = bomb + body.split(b"?>", 1)[1]
            dst.writestr(item, body)
    return out.getvalue()
