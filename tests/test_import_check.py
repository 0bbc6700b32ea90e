"""Class lists: reading messy files safely and checking every row with /dangky's fields (conversations/bulk.py),
the annotated copy, duplicates, and saving all rows or none (storage.students.import_students)."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlmodel import Session

from conversations import bulk
from storage import audit, students
from storage.db import session_scope
from storage.models import Staff, Student, StudentImport
from tests.import_files import (
    HEAD,
    csv_bytes,
    first_data_row,
    good_row,
    with_entity_bomb,
    xlsx,
    zip_bomb,
)

LIMITS = dict(max_rows=2000, max_bytes=5 * 1024 * 1024)


def _ctx(session, programme, clock, school_id, level="TH"):
    return bulk.check_context(
        session=session, programme=programme, now=clock.now(), school_id=school_id, school_level=level
    )


def _check(db, programme, clock, school_id, data, name="lop.xlsx"):
    with Session(db) as s:
        sheet = bulk.read_sheet(data, file_name=name, **LIMITS)
        return bulk.check_sheet(sheet, _ctx(s, programme, clock, school_id))


def _count(db) -> int:
    with Session(db) as s:
        return s.execute(select(func.count()).select_from(Student)).scalar_one()


def _register(db, world, clock, code="0123456789", name="Lê Thị Hoa", birth=date(2012, 3, 1)) -> None:
    with session_scope(db) as s:
        teacher = s.get(Staff, world.teacher_a)
        students.register_student(
            s,
            actor=teacher,
            full_name=name,
            birth_date=birth,
            class_name="4A1",
            code=code,
            gender="female",
            category="poor",
            need="device",
            now=clock.now(),
        )


# --- what real files look like ------------------------------------------------------------------------------------


def test_messy_but_valid_rows_are_cleaned(sqlite_engine, sqlite_world, programme, clock) -> None:
    rows = [
        good_row(1, B="  nguye\u0302\u0303n   văn  an "),  # NFD, spaces, lower case
        good_row(2, B=('=PROPER("le thi hoa")', "Le Thi Hoa"), C=41000),  # a formula's value; an Excel serial date
        good_row(3, B="Trần Thị Bé", C=datetime(2012, 1, 2), F="nu", G="can ngheo", I="ca hai"),  # a date cell
        good_row(4, B="Phạm Văn Cường", C="5/9/2012", E="0123.456.784", K=913860438, J="trần văn bố"),
        good_row(5, B="Võ Thị Dung", L='=HYPERLINK("http://x")'),  # formula-like text stays text
    ]
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows))
    assert checked.problems == [] and checked.sheet.header_row == 4  # title rows (merged) skipped
    by_name = {r["full_name"]: r for r in checked.rows}
    assert set(by_name) == {"Nguyễn Văn An", "Le Thi Hoa", "Trần Thị Bé", "Phạm Văn Cường", "Võ Thị Dung"}
    assert by_name["Le Thi Hoa"]["birth_date"] == date(2012, 4, 1)
    assert by_name["Trần Thị Bé"]["birth_date"] == date(2012, 1, 2)
    assert (by_name["Trần Thị Bé"]["gender"], by_name["Trần Thị Bé"]["category"]) == ("female", "near_poor")
    assert by_name["Trần Thị Bé"]["need"] == "both"
    assert by_name["Phạm Văn Cường"]["code"] == "0123456784"
    assert by_name["Phạm Văn Cường"]["guardian_phone"] == "+84913860438"
    assert by_name["Phạm Văn Cường"]["guardian_name"] == "Trần Văn Bố"
    assert by_name["Võ Thị Dung"]["note"] == '=HYPERLINK("http://x")'


def test_csv_with_semicolons_and_decomposed_text(sqlite_engine, sqlite_world, programme, clock) -> None:
    data = csv_bytes([good_row(1, B="Nguye\u0302\u0303n Văn An"), good_row(2, B="Trần Thị Bé")])
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, data, name="lop.csv")
    assert checked.problems == [] and [r["full_name"] for r in checked.rows] == ["Nguyễn Văn An", "Trần Thị Bé"]


def test_header_variants_and_ignored_columns(sqlite_engine, sqlite_world, programme, clock) -> None:
    head = ["TT", "Tên học sinh", "Ngày tháng năm sinh", "Lớp", "Mã học sinh", "Giới tính", "Diện", "Lý do",
            "Nhu cầu hỗ trợ", "Người giám hộ", "Điện thoại", "Ghi chú", "Dân tộc"]  # fmt: skip
    rows = [good_row(1) + ["Kinh"]]
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows, head=head, title=False))
    assert checked.problems == [] and len(checked.rows) == 1


# --- every bad-row kind: its message, on its line and column ------------------------------------------------------

BAD = [
    ("B", "Nguyễn Văn 4n", "không có số"),
    ("B", None, "Thiếu «Họ tên»"),
    ("C", "31/02/2012", "không có trên lịch"),
    ("C", "2012-13-01", "chưa đúng dạng"),
    ("C", "01/01/2030", "tương lai"),
    ("C", "01/01/2000", "không phải tuổi học sinh"),
    ("C", 12, "là một số, không phải ngày"),
    ("D", "7A", "Khối 7"),
    ("D", datetime(2021, 2, 3), "đổi lớp thành ngày"),
    ("E", "01234A6789", "chỉ gồm chữ số"),
    ("E", "12345", "có 5 số"),
    ("E", 123456789, "bỏ số 0 ở đầu (có lẽ mã là 0123456789)"),
    ("E", "12345678901", "bỏ số 0 ở đầu"),
    ("E", "7.4212E+11", "số mũ"),
    ("E", 7.4212e17, "làm tròn"),
    ("F", "con trai", "không khớp «Giới tính»"),
    ("G", "nghèo", "không khớp «Đối tượng»"),  # fits two groups: ambiguous, never guessed
    ("G", "Khó khăn khác", "Thiếu «Lý do khó khăn»"),  # reported on the reason's cell (H)
    ("I", None, "Thiếu «Nhu cầu»"),
    ("J", "Phụ huynh 1", "không có số"),
    ("K", "12345", "không hợp lệ"),
]


@pytest.mark.parametrize(("col", "value", "message"), BAD, ids=[f"{c}-{m[:18]}" for c, _, m in BAD])
def test_every_bad_row_kind_names_line_and_column(
    sqlite_engine, sqlite_world, programme, clock, col, value, message
) -> None:
    rows = [good_row(1), good_row(2, **{"B": "Trần Thị Bé", col: value}), good_row(3, B="Lê Văn Cảnh")]
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows))
    line = first_data_row() + 1
    col = "H" if message.startswith("Thiếu «Lý do") else col
    assert [(p.row, p.col) for p in checked.problems] == [(line, ord(col) - ord("A") + 1)], checked.problems
    assert message in checked.problems[0].message
    assert checked.rows == []  # all or nothing: nothing to save while one row is wrong
    report = "\n".join(bulk.report_lines(checked))
    assert "2 em hợp lệ, 1 dòng có lỗi" in report and f"Dòng {line}, cột {col}" in report


def test_missing_required_column_refuses_the_file(sqlite_engine, sqlite_world, programme, clock) -> None:
    head = [h for h in HEAD if h != "Nhu cầu"]
    rows = [[v for i, v in enumerate(good_row(1)) if i != 8]]
    with pytest.raises(bulk.FileRefused, match="thiếu cột: «Nhu cầu»"):
        _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows, head=head))


def test_tcvn3_and_vni_text_refused_with_the_way_out(sqlite_engine, sqlite_world, programme, clock) -> None:
    for legacy in ("NguyÔn V¨n An", "Nguyeãn Vaên Ñoâng"):
        data = xlsx([good_row(1), good_row(2, B=legacy)])
        with pytest.raises(bulk.FileRefused) as exc:
            _check(sqlite_engine, programme, clock, sqlite_world.school_a, data)
        assert "TCVN3" in exc.value.text() and "Unikey" in exc.value.text() and "B6" in exc.value.text()
    assert not bulk.looks_legacy("Nguyễn Văn Ông Hoà Thuý Đặng")  # real Vietnamese is never flagged


def test_tcvn3_headers_explained_not_just_no_header(sqlite_engine, sqlite_world, programme, clock) -> None:
    head = ["STT", "Hä vµ tªn", "Ngµy sinh", "Líp"]
    with pytest.raises(bulk.FileRefused, match="TCVN3"):
        _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx([[1, "x", "y", "z"]], head=head))


# --- duplicates ---------------------------------------------------------------------------------------------------


def test_duplicates_inside_the_file(sqlite_engine, sqlite_world, programme, clock) -> None:
    rows = [
        good_row(1),
        good_row(2, B="Trần Thị Bé", E="0000000001"),  # same code as row 1
        good_row(3, E="0000000003"),  # same name and birth date as row 1, another code: a warning to confirm
    ]
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows))
    first = first_data_row()
    assert [(p.row, p.col) for p in checked.problems] == [(first + 1, 5)]
    assert f"trùng với dòng {first}" in checked.problems[0].message
    assert [(w.row, w.col) for w in checked.warnings] == [(first + 2, 2)]
    assert f"dòng {first}" in checked.warnings[0].message


def test_duplicates_against_the_database(sqlite_engine, sqlite_world, programme, clock) -> None:
    _register(sqlite_engine, sqlite_world, clock, code="0000000002", name="Đỗ Văn Khác")
    _register(sqlite_engine, sqlite_world, clock, code="0999999999", name="Lê Thị Hoa", birth=date(2012, 3, 1))
    rows = [good_row(1), good_row(2, B="Trần Thị Bé"), good_row(3, B="Le Thi Hoa", C="01/03/2012")]
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, xlsx(rows))
    first = first_data_row()
    assert [(p.row, p.col) for p in checked.problems] == [(first + 1, 5)]
    assert "đã được đăng ký tại Trường Tiểu học Phú Hòa 1" in checked.problems[0].message
    # Same name (accents aside) and birth date as a registered pupil: confirmed by saving, as in /dangky.
    assert [(w.row, w.col) for w in checked.warnings] == [(first + 2, 2)]
    assert "mã 0999999999" in checked.warnings[0].message


# --- the annotated copy -------------------------------------------------------------------------------------------


def test_annotated_copy_comments_the_right_cells(sqlite_engine, sqlite_world, programme, clock, tmp_path) -> None:
    rows = [good_row(1), good_row(2, C="31/02/2012", F="con trai"), good_row(3, E=123456789)]
    data = xlsx(rows)
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, data)
    out = bulk.annotate(data, checked, tmp_path / "ann.xlsx")
    ws = load_workbook(out)["Lớp 4A1"]
    first = first_data_row()
    commented = {c.coordinate: c.comment.text for row in ws.iter_rows() for c in row if c.comment is not None}
    assert set(commented) == {f"C{first + 1}", f"F{first + 1}", f"E{first + 2}"}
    assert "không có trên lịch" in commented[f"C{first + 1}"] and "bỏ số 0" in commented[f"E{first + 2}"]
    assert ws[f"C{first + 1}"].fill.fgColor.rgb.endswith(bulk.ERROR_FILL)
    assert ws[f"B{first}"].comment is None and ws[f"B{first}"].value == "Nguyễn Văn An"  # the rest is untouched
    # The errors in words after the last column, on the header row and the faulty rows.
    assert ws.cell(4, len(HEAD) + 1).value == "Lỗi cần sửa (fieldbot)"
    assert "C6" in ws.cell(first + 1, len(HEAD) + 1).value
    # Sent back after fixing: the extra column is ignored.
    ws[f"C{first + 1}"], ws[f"F{first + 1}"], ws[f"E{first + 2}"] = "28/02/2012", "Nữ", "0123456789"
    buf = io.BytesIO()
    ws.parent.save(buf)
    again = _check(sqlite_engine, programme, clock, sqlite_world.school_a, buf.getvalue())
    assert again.problems == [] and len(again.rows) == 3


def test_annotated_copy_of_a_heavy_workbook_is_rebuilt_from_the_values(
    sqlite_engine, sqlite_world, programme, clock, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(bulk, "ANNOTATE_IN_PLACE_MAX", 10)  # every workbook counts as heavy
    data = xlsx([good_row(1, L="=1+2"), good_row(2, B="Trần Thị Bé", C="xx")])
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, data)
    ws = load_workbook(bulk.annotate(data, checked, tmp_path / "ann.xlsx"))["Lớp 4A1"]
    first = first_data_row()
    assert ws[f"B{first - 1}"].value == "Họ và tên" and ws[f"B{first}"].value == "Nguyễn Văn An"
    assert ws[f"C{first + 1}"].comment is not None and ws[f"L{first}"].data_type == "s"


def test_annotated_copy_of_a_csv_keeps_formula_text_as_text(
    sqlite_engine, sqlite_world, programme, clock, tmp_path
) -> None:
    data = csv_bytes([good_row(1, L="=1+2"), good_row(2, B="Trần Thị Bé", C="xx")])
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, data, name="lop.csv")
    out = bulk.annotate(data, checked, tmp_path / "ann.xlsx")
    ws = load_workbook(out).active
    assert ws["L2"].value == "=1+2" and ws["L2"].data_type == "s"
    assert ws["C3"].comment is not None and "chưa đúng dạng" in ws["C3"].comment.text


# --- limits and hostile files: one clear line ---------------------------------------------------------------------


def _refused(data: bytes, name: str = "lop.xlsx", **limits) -> str:
    with pytest.raises(bulk.FileRefused) as exc:
        bulk.read_sheet(data, file_name=name, **{**LIMITS, **limits})
    text = exc.value.text()
    assert "\n" not in text and "Traceback" not in text
    return text


def test_hostile_and_unusable_files_get_one_line() -> None:
    assert "bom ZIP" in _refused(zip_bomb(), max_bytes=50 * 1024 * 1024)
    assert "DTD" in _refused(with_entity_bomb(xlsx([good_row(1)])))
    assert "quá lớn" in _refused(xlsx([good_row(1)]), max_bytes=10_000 if len(xlsx([good_row(1)])) > 10_000 else 1)
    assert ".xls" in _refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, name="lop.xls")
    assert "không phải bảng tính" in _refused(b"%PDF-1.4 \x00\x01", name="lop.pdf")
    assert "hỏng" in _refused(b"PK\x03\x04 not really a zip", name="lop.xlsx")
    assert "tiêu đề" in _refused(xlsx([[1, 2, 3]], head=["a", "b", "c"]))
    assert "hơn 3 dòng" in _refused(xlsx([good_row(i) for i in range(1, 5)]), max_rows=3)


def test_row_limit_counts_pupils_not_blank_rows() -> None:
    rows = [good_row(1), [None] * 12, [None] * 12, good_row(2), good_row(3)]
    sheet = bulk.read_sheet(xlsx(rows), file_name="lop.xlsx", max_rows=3, max_bytes=LIMITS["max_bytes"])
    assert [r[0] for r in sheet.rows] == [5, 8, 9]


# --- the template -------------------------------------------------------------------------------------------------


def test_template_has_dropdowns_hints_and_an_example_that_passes(
    sqlite_engine, sqlite_world, programme, clock, tmp_path
) -> None:
    with Session(sqlite_engine) as s:
        ctx = _ctx(s, programme, clock, sqlite_world.school_a)
        out = bulk.write_template(ctx, tmp_path / "mau.xlsx", max_rows=2000)
    wb = load_workbook(out)
    ws = wb["Danh sách"]
    lists = {str(dv.sqref).split(":")[0][0]: dv.formula1 for dv in ws.data_validations.dataValidation}
    values = wb["DanhMuc"]
    for col, labels in (("F", ["Nam", "Nữ"]), ("G", [c.label_vi for c in programme.categories]),
                        ("I", ["Máy tính", "Sóng internet", "Cả hai"])):  # fmt: skip
        assert lists[col].startswith(f"DanhMuc!${col}$2")
        assert [values[f"{col}{i}"].value for i in range(2, 2 + len(labels))] == labels
    assert "dd/mm/yyyy" in ws["C3"].value and "ngày/tháng/năm" in ws["A2"].value
    assert ws["E4"].number_format == "@" and ws["E4"].value == "0123456789"
    # The example row is skipped on import; the same row numbered passes every check.
    data = out.read_bytes()
    example = _check(sqlite_engine, programme, clock, sqlite_world.school_a, data)
    assert example.total == 0 and example.sheet.skipped_example
    ws["A4"] = 1
    buf = io.BytesIO()
    wb.save(buf)
    checked = _check(sqlite_engine, programme, clock, sqlite_world.school_a, buf.getvalue())
    assert checked.problems == [] and [r["full_name"] for r in checked.rows] == ["Nguyễn Văn An"]


# --- saving: one transaction, all or nothing, scope ------------------------------------------------------------------


def _rows(db, programme, clock, school_id, n=3):
    data = xlsx([good_row(i, B=name) for i, name in enumerate(["Nguyễn Văn An", "Trần Thị Bé", "Lê Văn Cảnh"], 1)])
    checked = _check(db, programme, clock, school_id, data)
    assert checked.ok
    return checked.rows[:n]


def test_import_saves_pending_rows_with_their_batch(db_engine, world, programme, clock) -> None:
    rows = _rows(db_engine, programme, clock, world.school_a)
    with session_scope(db_engine) as s:
        batch = students.import_students(
            s, actor=s.get(Staff, world.teacher_a), school_id=world.school_a, rows=rows, file_name="lop.xlsx",
            sha256="x" * 64, now=clock.now(),
        )  # fmt: skip
        batch_id = batch.id
    with Session(db_engine) as s:
        saved = s.exec(select(Student).order_by(Student.id)).scalars().all()
        assert [(st.full_name, st.status, st.import_id) for st in saved] == [
            ("Nguyễn Văn An", "pending", batch_id),
            ("Trần Thị Bé", "pending", batch_id),
            ("Lê Văn Cảnh", "pending", batch_id),
        ]
        assert s.get(StudentImport, batch_id).rows == 3
        assert audit.history(s, entity="student_import", entity_id=batch_id)[0].action == "import"


def test_a_failure_while_saving_leaves_nothing(db_engine, world, programme, clock, monkeypatch) -> None:
    rows = _rows(db_engine, programme, clock, world.school_a)

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError), session_scope(db_engine) as s:
        students.import_students(
            s, actor=s.get(Staff, world.teacher_a), school_id=world.school_a, rows=rows, file_name="lop.xlsx",
            sha256="x" * 64, now=clock.now(),
        )  # fmt: skip
    assert _count(db_engine) == 0
    with Session(db_engine) as s:
        assert s.execute(select(func.count()).select_from(StudentImport)).scalar_one() == 0


def test_a_code_registered_meanwhile_refuses_the_whole_list(db_engine, world, programme, clock) -> None:
    rows = _rows(db_engine, programme, clock, world.school_a)
    _register(db_engine, world, clock, code=rows[2]["code"], name="Hồ Văn Khác")
    with pytest.raises(students.DuplicateCode), session_scope(db_engine) as s:
        students.import_students(
            s, actor=s.get(Staff, world.teacher_a), school_id=world.school_a, rows=rows, file_name="lop.xlsx",
            sha256="x" * 64, now=clock.now(),
        )  # fmt: skip
    assert _count(db_engine) == 1  # only the one registered by hand


@pytest.mark.parametrize(
    ("who", "school", "allowed"),
    [
        ("teacher_a", "school_a", True),
        ("teacher_a", "school_b", False),  # a teacher cannot import into another school
        ("principal_b", "school_a", False),
        ("officer", "school_b", True),  # the district office: any school of its district
        ("officer", "school_other", False),
        ("other_officer", "school_a", False),
    ],
)
def test_role_and_school_scope(sqlite_engine, sqlite_world, programme, clock, who, school, allowed) -> None:
    rows = _rows(sqlite_engine, programme, clock, sqlite_world.school_a, n=1)
    target = getattr(sqlite_world, school)
    with Session(sqlite_engine) as s:
        actor = s.get(Staff, getattr(sqlite_world, who))
        if allowed:
            students.import_students(
                s, actor=actor, school_id=target, rows=rows, file_name="f", sha256="x", now=clock.now()
            )
            assert s.execute(select(Student.school_id)).scalars().all() == [target]
        else:
            with pytest.raises(students.NotAllowed):
                students.import_students(
                    s, actor=actor, school_id=target, rows=rows, file_name="f", sha256="x", now=clock.now()
                )
            assert s.execute(select(func.count()).select_from(Student)).scalar_one() == 0
