"""The `fieldbot` command: --help everywhere, one clear line for every operator mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "roster.csv"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean FIELDBOT_ environment pointing at a private database and media folder."""
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    return tmp_path


def subcommands(parser) -> list[list[str]]:
    import argparse

    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append([name])
                out.extend([name, *rest] for rest in subcommands(sub))
    return out


def test_every_subcommand_has_help(capsys) -> None:
    paths = subcommands(build_parser())
    assert ["run"] in paths and ["chat"] in paths and ["roster", "import"] in paths and ["db", "upgrade"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0
        assert capsys.readouterr().out.strip()


def test_roster_import_list_and_reimport(env, capsys) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert "người mới" in capsys.readouterr().out
    assert main(["roster", "list"]) == 0
    listing = capsys.readouterr().out
    assert "Lê Minh Tiến" in listing and "hiệu trưởng" in listing and "0913 860 438" in listing
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert "0 người mới" in capsys.readouterr().out


def test_roster_import_bad_file_prints_every_bad_row(env, capsys) -> None:
    bad = env / "bad.csv"
    bad.write_text(
        EXAMPLE.read_text(encoding="utf-8") + "TDM,Thành phố Thủ Dầu Một,X,Trường X,THPT,teacher,A B,1,\n",
        encoding="utf-8",
    )
    assert main(["roster", "import", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "chưa có gì thay đổi" in out and "Dòng 15:" in out and "THPT" in out


def test_missing_roster_file(env, capsys) -> None:
    assert main(["roster", "import", "khong-co.csv"]) == 2
    assert "Không tìm thấy" in capsys.readouterr().out


def test_bad_setting_names_the_variable(env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FIELDBOT_LOG_LEVEL", "LOUD")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "FIELDBOT_LOG_LEVEL" in err and len(err.strip().splitlines()) == 1


def test_unreachable_database(env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "Không kết nối được cơ sở dữ liệu" in err and len(err.strip().splitlines()) == 1


def test_bad_programme_file(env, monkeypatch, capsys) -> None:
    prog = env / "p.toml"
    prog.write_text(
        (ROOT / "bot" / "programme.toml").read_text(encoding="utf-8").replace("20/11/2021", "31/02/2021"),
        encoding="utf-8",
    )
    monkeypatch.setenv("FIELDBOT_PROGRAMME", str(prog))
    assert main(["db", "upgrade"]) == 2
    assert "deadlines.needs_report" in capsys.readouterr().err


def test_run_without_channel_explains_setup(env, capsys) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "FIELDBOT_TELEGRAM_TOKEN" in err and "fieldbot chat" in err


@pytest.mark.parametrize("how", ["setting", "flag"])
def test_a_worker_without_a_webhook_is_refused(env, monkeypatch, capsys, how: str) -> None:
    """Two pollers on one bot end each other with 409: a worker only makes sense behind a webhook proxy."""
    monkeypatch.setenv("FIELDBOT_TELEGRAM_TOKEN", "123456:TEST-TOKEN")
    if how == "setting":
        monkeypatch.setenv("FIELDBOT_ROLE", "worker")
    assert main(["run", *(["--role", "worker"] if how == "flag" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert "FIELDBOT_TELEGRAM_WEBHOOK_URL" in err and "\n" not in err and "Traceback" not in err


def test_console_script_is_installed(env) -> None:
    exe = Path(sys.executable).with_name("fieldbot")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "roster" in out.stdout
