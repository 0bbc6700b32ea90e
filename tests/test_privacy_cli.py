"""The operator's side of children's data: `fieldbot purge`, `fieldbot students erase`, `fieldbot audit`, and the
access-log rows written by `fieldbot export` and `fieldbot backup`; every mistake one line."""

from __future__ import annotations

import io
import os

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot.cli import main
from storage import access_log
from storage.db import make_engine
from storage.models import Photo, Student
from tests.factories import seed_world
from tests.test_reports_data import seed_reports


@pytest.fixture
def env(tmp_path, monkeypatch, clock, programme):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    assert main(["db", "upgrade"]) == 0  # the migration, so the access log's triggers are the migration's
    engine = make_engine(url)
    world = seed_world(engine, now=clock.now())
    seed_reports(engine, world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")
    engine.dispose()
    return url


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal (the answer itself comes from the patched ``input``)."""

    def isatty(self) -> bool:
        return True


def _log(url) -> list:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = [(r.what, r.scope, r.pupils, r.role) for r in access_log.entries(s)]
    engine.dispose()
    return rows


def _scalar(url, stmt):
    engine = make_engine(url)
    with Session(engine) as s:
        value = s.scalar(stmt)
    engine.dispose()
    return value


def test_export_and_backup_write_one_row_each(env, capsys, tmp_path) -> None:
    assert main(["export", "--out", "a.xlsx", "--school", "TH-PHUHOA1"]) == 0
    assert main(["export", "--out", "d.xlsx", "--district", "TDM"]) == 0
    assert main(["backup", "--out", str(tmp_path / "b.bak")]) == 0
    assert _log(env) == [
        ("export_cli", "school:TH-PHUHOA1", 7, "operator"),
        ("export_cli", "district:TDM", 9, "operator"),
        ("backup", "all", 10, "operator"),
    ]
    capsys.readouterr()
    assert main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "xuất tệp (dòng lệnh)" in out and "school:TH-PHUHOA1" in out and "sao lưu" in out and "3 dòng" in out
    assert (
        main(["audit", "--school", "THCS-CHUVANAN"]) == 0
    )  # the district-wide export and the backup? no: district only
    out = capsys.readouterr().out
    assert "district:TDM" in out and "school:TH-PHUHOA1" not in out
    assert main(["audit", "--since", "01/01/2099"]) == 0
    assert "trống" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["audit", "--since", "2021-11-01"], "--since: ngày không hợp lệ"),
        (["audit", "--school", "KHONGCO"], "không có trường mã KHONGCO"),
        (["purge", "--before", "31/02/2021"], "--before: ngày không hợp lệ"),
        (["purge", "--before", "01/01/2999"], "ở tương lai"),
        (["students", "erase", "079215000001", "--school", "KHONGCO"], "không có trường mã KHONGCO"),
        (["students", "erase", "079215000001", "--school", "THCS-CHUVANAN"], "không có học sinh mã 079215000001"),
        (["students", "erase", "123", "--school", "TH-PHUHOA1"], "không có học sinh mã 123"),
    ],
)
def test_operator_mistakes_are_one_line(env, capsys, argv, message) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_purge_prints_first_dry_run_changes_nothing_second_run_removes_nothing(env, capsys, tmp_path) -> None:
    photos = sorted(p for p in (tmp_path / "media").rglob("*.jpg"))
    assert len(photos) == 3
    capsys.readouterr()
    assert main(["purge", "--before", "18/11/2021", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 đăng ký: 10 ngày sinh, 1 lý do khó khăn" in out and "chưa xóa gì" in out
    assert all(p.exists() for p in photos) and _scalar(env, select(func.count()).select_from(Photo)) == 3
    assert main(["purge", "--before", "18/11/2021", "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.index("sẽ bị xóa") < out.index("Đã xóa") and "3 tệp" in out
    assert not any(p.exists() for p in photos)
    assert _scalar(env, select(func.count()).select_from(Student).where(Student.birth_date.is_not(None))) == 0
    assert main(["purge", "--before", "18/11/2021", "--yes"]) == 0
    assert "Không có gì để xóa" in capsys.readouterr().out
    assert [w for w, *_ in _log(env)] == ["purge"]


def test_purge_asks_before_removing(env, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda _prompt: "không")
    assert main(["purge", "--before", "18/11/2021"]) == 1
    assert "Đã hủy" in capsys.readouterr().out
    assert _scalar(env, select(func.count()).select_from(Photo)) == 3


def test_students_erase(env, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", lambda _prompt: "sai")
    capsys.readouterr()
    assert main(["students", "erase", "079215000001", "--school", "TH-PHUHOA1"]) == 1
    out = capsys.readouterr().out
    assert "Nguyễn Thị Ánh" in out and "Đã hủy" in out
    monkeypatch.setattr("builtins.input", lambda _prompt: "dong y")
    assert main(["students", "erase", "079215000001", "--school", "TH-PHUHOA1"]) == 0
    assert "Đã xóa em mã 079215000001: 1 bàn giao, 1 ảnh" in capsys.readouterr().out
    assert _scalar(env, select(Student.id).where(Student.code == "079215000001")) is None
    assert _log(env) == [("erase", "student:079215000001", 1, "operator")]
    assert main(["students", "erase", "079215000002", "--school", "TH-PHUHOA1", "--yes"]) == 0
    assert _scalar(env, select(func.count()).select_from(Student)) == 8


def test_backup_of_a_database_not_yet_upgraded_still_backs_up_and_says_why_no_log_row(
    tmp_path, monkeypatch, capsys
) -> None:
    from storage.db import upgrade

    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")  # before the access log existed
    engine.dispose()
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    assert main(["backup", "--out", str(tmp_path / "old.bak")]) == 0
    captured = capsys.readouterr()
    assert (tmp_path / "old.bak").is_file() and "Đã sao lưu" in captured.out
    assert "chưa ghi được nhật ký truy cập" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_restore_is_written_in_the_restored_databases_log(env, capsys, tmp_path) -> None:
    """The restored pupil data is live again: its own access log says who restored it, from which file."""
    assert main(["backup", "--out", str(tmp_path / "b.bak")]) == 0
    assert main(["restore", str(tmp_path / "b.bak"), "--yes"]) == 0
    rows = _log(env)
    assert rows[-1] == ("restore", "file:b.bak", 10, "operator")
    capsys.readouterr()
    assert main(["audit"]) == 0
    assert "khôi phục từ bản sao lưu" in capsys.readouterr().out
