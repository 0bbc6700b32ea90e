"""`fieldbot students template|import`: the district's way to the same checks; --dry-run changes nothing; one
line for every operator mistake and every hostile file."""

from __future__ import annotations

import os

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlmodel import Session

from bot.cli import main
from storage.db import make_engine
from storage.models import Staff, Student, StudentImport
from tests.factories import seed_world
from tests.import_files import good_row, xlsx, zip_bomb


@pytest.fixture
def env(tmp_path, monkeypatch, clock):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setattr("bot.app.SystemClock", lambda: clock)  # the pupils' ages are checked against "today"
    assert main(["db", "upgrade"]) == 0
    engine = make_engine(url)
    seed_world(engine, now=clock.now())
    yield engine
    engine.dispose()


def _counts(engine) -> tuple[int, int]:
    with Session(engine) as s:
        return (
            s.execute(select(func.count()).select_from(Student)).scalar_one(),
            s.execute(select(func.count()).select_from(StudentImport)).scalar_one(),
        )


def _file(tmp_path, rows, name="lop.xlsx"):
    path = tmp_path / name
    path.write_bytes(xlsx(rows))
    return path


ROWS = [good_row(1), good_row(2, B="Trần Thị Bé"), good_row(3, B="Lê Văn Cảnh")]


def test_dry_run_changes_nothing_then_import_saves(env, tmp_path, capsys) -> None:
    path = _file(tmp_path, ROWS)
    assert main(["students", "import", str(path), "--school", "TH-PHUHOA1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 em hợp lệ, 0 dòng có lỗi" in out and "--dry-run" in out and "chưa lưu gì" in out
    assert _counts(env) == (0, 0)
    assert main(["students", "import", str(path), "--school", "TH-PHUHOA1"]) == 0
    assert "Đã lưu 3 em vào Trường Tiểu học Phú Hòa 1" in capsys.readouterr().out
    with Session(env) as s:
        saved = s.exec(select(Student)).scalars().all()
        officer = s.exec(select(Staff).where(Staff.phone == "+84913860438")).scalar_one()
        assert {(st.status, st.registered_by) for st in saved} == {("pending", officer.id)}
    # The same file again: every code is taken now; nothing more is saved, the annotated copy is written.
    assert main(["students", "import", str(path), "--school", "TH-PHUHOA1"]) == 1
    out = capsys.readouterr()
    assert "0 em hợp lệ, 3 dòng có lỗi" in out.out and "đã được đăng ký" in out.out
    assert "lop-can-sua.xlsx" in out.err and (tmp_path / "lop-can-sua.xlsx").is_file()
    assert _counts(env) == (3, 1)


def test_errors_printed_by_line_and_column_and_annotated(env, tmp_path, capsys) -> None:
    path = _file(tmp_path, [good_row(1), good_row(2, B="Trần Thị Bé", E="7.4212E+11")])
    report = tmp_path / "loi.xlsx"
    assert main(["students", "import", str(path), "--school", "TH-PHUHOA1", "--report", str(report)]) == 1
    out = capsys.readouterr().out
    assert "Dòng 6, cột E (Mã định danh)" in out and "số mũ" in out
    assert load_workbook(report)["Lớp 4A1"]["E6"].comment is not None
    assert _counts(env) == (0, 0)


def test_the_example_row_of_the_template_passes_for_the_schools_level(env, tmp_path, capsys) -> None:
    for school in ("TH-PHUHOA1", "THCS-CHUVANAN"):
        out = tmp_path / f"mau-{school}.xlsx"
        assert main(["students", "template", "--out", str(out), "--school", school]) == 0
        wb = load_workbook(out)
        wb["Danh sách"]["A4"] = 1  # numbered: no longer the skipped example
        wb.save(out)
        assert main(["students", "import", str(out), "--school", school, "--dry-run"]) == 0
        assert "1 em hợp lệ, 0 dòng có lỗi" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["students", "import", "khong-co.xlsx", "--school", "TH-PHUHOA1"], "không tìm thấy tệp"),
        (["students", "import", "{file}", "--school", "XX"], "không có trường mã XX"),
        (["students", "import", "{bomb}", "--school", "TH-PHUHOA1"], "bom ZIP"),
        (["students", "import", "{legacy}", "--school", "TH-PHUHOA1"], "TCVN3"),
        (["students", "import", "{file}", "--school", "TH-PHUHOA1", "--by", "0902000002"], "trường mình"),
        (["students", "import", "{file}", "--school", "TH-DIAN", "--by", "0913860438"], "không thuộc quận/huyện"),
        (["students", "import", "{file}", "--school", "TH-PHUHOA1", "--by", "0999"], "--by"),
        (["students", "template", "--out", "mau.csv"], "phải là tệp .xlsx"),
        (["students", "template", "--out", "{file}"], "--force"),  # never replaces a file silently
    ],
)
def test_operator_mistakes_and_hostile_files_are_one_line(env, tmp_path, capsys, argv, message) -> None:
    files = {
        "{file}": _file(tmp_path, ROWS),
        "{legacy}": _file(tmp_path, [good_row(1, B="NguyÔn V¨n An")], "cu.xlsx"),
        "{bomb}": tmp_path / "bom.xlsx",
    }
    files["{bomb}"].write_bytes(zip_bomb())
    argv = [str(files.get(a, a)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Lỗi: ") and message in err and "\n" not in err
    assert _counts(env) == (0, 0)
