"""`fieldbot export`: the operator's way to the same workbook, with one clear line for every mistake."""

from __future__ import annotations

import os
import zipfile

import openpyxl
import pytest

from bot.cli import main
from storage.db import make_engine
from tests.factories import seed_world
from tests.test_reports_data import OUTSIDER, seed_reports


@pytest.fixture
def env(tmp_path, monkeypatch, clock, programme):
    """A private SQLite database migrated by `fieldbot db upgrade`, seeded with two districts' data."""
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    assert main(["db", "upgrade"]) == 0
    engine = make_engine(url)
    world = seed_world(engine, now=clock.now())
    seed_reports(engine, world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")
    engine.dispose()
    return tmp_path


def test_export_district_and_school(env, capsys) -> None:
    capsys.readouterr()
    assert main(["export", "--out", "tdm.xlsx", "--district", "TDM"]) == 0
    out = capsys.readouterr().out
    assert "tdm.xlsx" in out and "Thành phố Thủ Dầu Một" in out
    assert "2 trường, 9 học sinh, 3 lô máy, 4 bàn giao" in out
    wb = openpyxl.load_workbook(env / "tdm.xlsx")
    assert wb.sheetnames == ["Nhu cầu", "Tiếp nhận", "Bàn giao", "Tổng hợp"]
    assert OUTSIDER not in {c.value for row in wb["Nhu cầu"].iter_rows() for c in row}

    assert main(["export", "--out", "a.xlsx", "--school", "TH-PHUHOA1"]) == 0
    assert "1 trường, 7 học sinh, 2 lô máy, 3 bàn giao" in capsys.readouterr().out


def test_export_with_photos(env, capsys) -> None:
    assert main(["export", "--out", "a.xlsx", "--school", "TH-PHUHOA1", "--with-photos"]) == 0
    out = capsys.readouterr().out
    assert "a.zip" in out and "Ảnh: 3 tệp" in out
    with zipfile.ZipFile(env / "a.zip") as z:
        assert "a.xlsx" in z.namelist() and sum(n.startswith("photos/") for n in z.namelist()) == 3
    assert not (env / "a.xlsx").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["export", "--out", "x.xlsx"], "có 2 quận/huyện (DA, TDM): chọn một bằng --district MÃ"),
        (["export", "--out", "x.xlsx", "--district", "XYZ"], "không có quận/huyện mã XYZ (có: DA, TDM)"),
        (["export", "--out", "x.xlsx", "--school", "KHONGCO"], "không có trường mã KHONGCO"),
        (
            ["export", "--out", "x.xlsx", "--school", "TH-DIAN", "--district", "TDM"],
            "trường TH-DIAN không thuộc quận/huyện TDM",
        ),
        (["export", "--out", "x.csv"], "--out phải là tệp .xlsx"),
        (["export", "--out", "x.zip"], "tệp .zip chỉ dùng với --with-photos"),
    ],
)
def test_operator_mistakes_are_one_line(env, capsys, argv, message) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (env / "x.xlsx").exists()


def test_the_only_district_needs_no_code(tmp_path, monkeypatch, capsys) -> None:
    from storage.db import session_scope
    from storage.models import District, School

    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'one.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    assert main(["export", "--out", "x.xlsx"]) == 2  # nothing imported yet
    assert "fieldbot roster import" in capsys.readouterr().err
    engine = make_engine(url)
    with session_scope(engine) as s:
        d = District(code="TDM", name="Thành phố Thủ Dầu Một")
        s.add(d)
        s.flush()
        s.add(School(code="TH-A", name="Trường Tiểu học A", level="TH", district_id=d.id))
    engine.dispose()
    assert main(["export", "--out", "x.xlsx"]) == 0
    assert "1 trường, 0 học sinh, 0 lô máy, 0 bàn giao" in capsys.readouterr().out
