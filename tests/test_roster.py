"""Roster import: every bad row named with its line, all-or-nothing, re-import updates in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from storage.db import session_scope
from storage.models import District, School, Staff
from storage.roster import HEADER, RosterError, RosterProblems, import_roster

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "roster.csv"
HEAD = ",".join(HEADER)
OK_ROWS = [
    "TDM,Thành phố Thủ Dầu Một,,,,district_officer,Lê Minh Tiến,0913.860.438,leminhtien@tptdm.edu.vn",
    "TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,principal,Nguyễn Thị Lan,0901 000 001,lan@a.example",
    "TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Trần Văn Minh,+84901000002,",
]


def write_csv(tmp_path: Path, rows: list[str], name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEAD, *rows]) + "\n", encoding="utf-8")
    return path


def run_import(engine, path: Path, clock):
    with session_scope(engine) as s:
        return import_roster(s, path=path, now=clock.now())


def count(engine, model) -> int:
    with session_scope(engine) as s:
        return s.exec(select(func.count()).select_from(model)).scalar_one()


def test_example_roster_imports(db_engine, clock) -> None:
    result = run_import(db_engine, EXAMPLE, clock)
    assert result.districts == 1 and result.schools >= 4 and result.created >= 10
    with session_scope(db_engine) as s:
        officer = s.exec(select(Staff).where(Staff.phone == "+84913860438")).scalar_one()
        assert officer.full_name == "Lê Minh Tiến" and officer.school_id is None
        levels = set(s.exec(select(School.level)).scalars())
    assert levels == {"TH", "THCS"}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Lý Thu Hà,12345,", "số điện thoại không hợp lệ"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,janitor,Lý Thu Hà,0901000003,", "vai trò 'janitor'"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,THPT,teacher,Lý Thu Hà,0901000003,", "cấp học 'THPT'"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Lý Thu Hà,0901 000 002,", "trùng với dòng 4"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,,0901000003,", "thiếu họ và tên"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Hà,0901000003,", "họ và tên 'Hà'"),
        ("TDM,Thành phố Thủ Dầu Một,,,,teacher,Lý Thu Hà,0901000003,", "thiếu mã hoặc tên trường"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,district_officer,Lý Thu Hà,0901000003,", "để trống"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Lý Thu Hà,0901000003,not-an-email", "email"),
        ("TDM,Tên khác,TH-B,Trường Tiểu học B,TH,teacher,Lý Thu Hà,0901000003,", "có tên khác"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường A đổi tên,TH,teacher,Lý Thu Hà,0901000003,", "khác tên"),
        ("TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,principal,Lý Thu Hà,0901000003,", "đã có hiệu trưởng"),
    ],
)
def test_bad_row_imports_nothing_and_names_line(db_engine, clock, tmp_path, row: str, reason: str) -> None:
    path = write_csv(tmp_path, [*OK_ROWS, row])
    with pytest.raises(RosterProblems) as info:
        run_import(db_engine, path, clock)
    lines = [line for line, _ in info.value.problems]
    assert 5 in lines or (reason == "đã có hiệu trưởng" and lines == [5])
    assert reason in str(info.value)
    assert str(info.value).startswith("Dòng ")
    assert count(db_engine, Staff) == 0 and count(db_engine, School) == 0


def test_every_bad_row_is_listed(db_engine, clock, tmp_path) -> None:
    path = write_csv(
        tmp_path,
        [
            *OK_ROWS,
            "TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,TH,teacher,Lý Thu Hà,999,",
            "TDM,Thành phố Thủ Dầu Một,TH-A,Trường Tiểu học A,XX,boss,Võ Mai,0901000004,",
        ],
    )
    with pytest.raises(RosterProblems) as info:
        run_import(db_engine, path, clock)
    assert [line for line, _ in info.value.problems] == [5, 6]
    assert "cấp học" in info.value.problems[1][1] and "vai trò" in info.value.problems[1][1]


def test_reimport_updates_in_place_and_deactivates_missing(db_engine, clock, tmp_path) -> None:
    first = run_import(db_engine, write_csv(tmp_path, OK_ROWS), clock)
    assert (first.created, first.updated) == (3, 0)
    changed = [OK_ROWS[0], OK_ROWS[1].replace("Nguyễn Thị Lan", "Nguyễn Thị Lan Anh")]
    second = run_import(db_engine, write_csv(tmp_path, changed, "v2.csv"), clock)
    assert (second.created, second.updated, second.deactivated) == (0, 1, 1)
    assert count(db_engine, Staff) == 3  # nobody deleted
    with session_scope(db_engine) as s:
        teacher = s.exec(select(Staff).where(Staff.phone == "+84901000002")).scalar_one()
        principal = s.exec(select(Staff).where(Staff.phone == "+84901000001")).scalar_one()
    assert teacher.active is False and principal.full_name == "Nguyễn Thị Lan Anh"
    third = run_import(db_engine, write_csv(tmp_path, OK_ROWS, "v3.csv"), clock)
    assert third.created == 0 and third.updated == 2  # the teacher is back, the name restored
    assert count(db_engine, District) == 1 and count(db_engine, School) == 1


def test_xlsx_roster(db_engine, clock, tmp_path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(list(HEADER))
    for row in OK_ROWS:
        ws.append(row.split(","))
    ws.append([None] * len(HEADER))  # trailing blank row, as spreadsheets often have
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    assert run_import(db_engine, path, clock).created == 3


def test_semicolon_csv_with_bom(db_engine, clock, tmp_path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + "\n".join(r.replace(",", ";") for r in [HEAD, *OK_ROWS])).encode("utf-8"))
    assert run_import(db_engine, path, clock).created == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("roster.pdf", b"%PDF-1.4", "không phải CSV hoặc XLSX"),
        ("roster.xlsx", b"not a zip at all", "không phải tệp XLSX"),
        ("roster.csv", "họ tên\n".encode("cp1258", errors="ignore") + b"\xff\xfe\xfa", "UTF-8"),
        ("roster.csv", b"name,phone\nA B,0901000001\n", "Thiếu cột"),
        ("roster.csv", b"", "trống"),
    ],
)
def test_unreadable_files(db_engine, clock, tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RosterError, match=message):
        run_import(db_engine, path, clock)


def test_missing_file(sqlite_engine, clock, tmp_path) -> None:
    with pytest.raises(RosterError, match="Không tìm thấy"):
        run_import(sqlite_engine, tmp_path / "nope.csv", clock)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_csv_gets_the_save_as_csv_utf8_hint(sqlite_engine, clock, tmp_path, encoding) -> None:
    """Excel's "Unicode Text" (UTF-16, with or without a byte-order mark) gets the same hint as cp1258."""
    path = tmp_path / "unicode.csv"
    path.write_bytes("\n".join([HEAD, *OK_ROWS]).encode(encoding))
    with pytest.raises(RosterError, match="UTF-16") as info:
        run_import(sqlite_engine, path, clock)
    assert "CSV UTF-8" in str(info.value)
    assert count(sqlite_engine, Staff) == 0


def test_cp1258_csv_gets_the_same_hint(sqlite_engine, clock, tmp_path) -> None:
    path = tmp_path / "cp1258.csv"
    path.write_bytes("\n".join([HEAD, "TDM,Thành Lê,,,,district_officer,Lê Thành,0901000009,"]).encode("cp1258"))
    with pytest.raises(RosterError, match="CSV UTF-8"):
        run_import(sqlite_engine, path, clock)


@pytest.mark.parametrize("kind", ["csv", "csv with blank lines", "xlsx"])
def test_header_only_file_says_it_has_no_data_rows(sqlite_engine, clock, tmp_path, kind) -> None:
    if kind == "xlsx":
        wb = Workbook()
        wb.active.append(list(HEADER))
        path = tmp_path / "empty.xlsx"
        wb.save(path)
    else:
        path = write_csv(tmp_path, [",,,,,,,,", ""] if "blank" in kind else [])
    with pytest.raises(RosterError, match="chưa có dòng dữ liệu nào") as info:
        run_import(sqlite_engine, path, clock)
    assert "Dòng" not in str(info.value) and "sai" not in str(info.value)


def test_a_folder_is_not_a_roster(sqlite_engine, clock, tmp_path) -> None:
    (tmp_path / "roster.csv").mkdir()
    with pytest.raises(RosterError, match="không phải một tệp"):
        run_import(sqlite_engine, tmp_path / "roster.csv", clock)
