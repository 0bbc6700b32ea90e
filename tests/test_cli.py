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
    out, err = capsys.readouterr()
    assert "Dòng 15:" in out and "THPT" in out  # every bad row, for whoever fixes the spreadsheet
    assert "có 1 dòng sai" in err and "chưa có gì thay đổi" in err and len(err.strip().splitlines()) == 1


def test_missing_roster_file(env, capsys) -> None:
    assert main(["roster", "import", "khong-co.csv"]) == 2
    err = capsys.readouterr().err
    assert "Không tìm thấy" in err and len(err.strip().splitlines()) == 1


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


def test_console_script_is_installed(env) -> None:
    exe = Path(sys.executable).with_name("fieldbot")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "roster" in out.stdout


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- argparse speaks Vietnamese ----------------------------------------------------------------------------------


def test_missing_argument_is_one_vietnamese_line(env, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["backup"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert one_line(err) == "Lỗi: thiếu tham số bắt buộc: --out (xem: fieldbot backup --help)"
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "Lỗi: thiếu tham số bắt buộc: LỆNH (xem: fieldbot --help)"),
        (["khongco"], "Lỗi: LỆNH: không có lựa chọn 'khongco' (chọn một trong: "),
        (["export", "--out"], "Lỗi: --out cần một giá trị (xem: fieldbot export --help)"),
        (["export", "--out", "x.xlsx", "--lang", "fr"], "Lỗi: --lang: không có lựa chọn 'fr'"),
        (["roster", "list", "--bogus"], "Lỗi: tham số không nhận ra: --bogus (xem: fieldbot --help)"),
        (["roster", "import"], "Lỗi: thiếu tham số bắt buộc: file (xem: fieldbot roster import --help)"),
    ],
)
def test_argparse_errors_are_vietnamese(env, capsys, argv, expected) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(expected)
    for english in ("usage:", "error:", "required", "invalid choice", "expected one", "unrecognized"):
        assert english not in line


def test_help_is_vietnamese(capsys) -> None:
    for argv in (["--help"], ["backup", "--help"], ["roster", "import", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert out.startswith("Cách dùng: fieldbot")
        assert "tùy chọn:" in out and "in hướng dẫn này rồi thoát" in out
        for english in ("usage:", "options:", "show this help message", "positional arguments"):
            assert english not in out


def test_translate_error_keeps_unknown_messages() -> None:
    from bot.cli import translate_error

    assert translate_error("argument --x: not allowed with argument --y") == "--x không dùng cùng với --y"
    assert translate_error("something new") == "something new"


# --- one line for each operator mistake ---------------------------------------------------------------------------


def test_chat_with_a_bad_phone_says_it_once(env, capsys) -> None:
    assert main(["chat", "--phone", "abc"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.lower().count("không hợp lệ") == 1 and "abc" in line


def test_roster_code_with_a_bad_phone_is_one_line_on_stderr(env, capsys) -> None:
    assert main(["roster", "code", "abc"]) == 2
    out, err = capsys.readouterr()
    assert "không hợp lệ" in one_line(err) and out == ""
    assert main(["roster", "code", "0901999999"]) == 2
    assert "không có trong danh sách" in one_line(capsys.readouterr().err)


def test_header_only_roster_says_no_data_rows(env, capsys) -> None:
    path = env / "empty.csv"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert main(["roster", "import", str(path)]) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert "chưa có dòng dữ liệu nào" in line and "dòng sai" not in line and "Dòng 1" not in out + err


def test_utf16_roster_gets_the_save_as_hint(env, capsys) -> None:
    path = env / "utf16.csv"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-16")
    assert main(["roster", "import", str(path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "UTF-16" in line and "CSV UTF-8" in line


def test_sweep_without_a_channel_does_not_claim_to_send(env, capsys) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    capsys.readouterr()
    assert main(["sweep", "--now", "2021-11-21T08:00:00+07:00"]) == 0
    out, err = capsys.readouterr()
    first = out.splitlines()[0]
    assert "chưa gửi" in first and "và gửi" not in first
    assert "ghi và gửi" not in out and "delivered" not in out
    assert "Chưa gửi: chưa cấu hình kênh gửi nào" in out
    assert err == ""  # quiet by default: no INFO log lines


def test_export_and_sweep_are_quiet_unless_verbose(env, capsys, monkeypatch) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["export", "--out", "a.xlsx"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["export", "--out", "b.xlsx", "-v"]) == 0
    assert "INFO reports.export" in capsys.readouterr().err
    assert main(["-v", "sweep", "--now", "2021-11-21T08:00:00+07:00", "--dry-run"]) == 0
    assert "INFO scheduler.sweep" in capsys.readouterr().err
    assert main(["sweep", "--now", "2021-11-21T08:00:00+07:00", "--dry-run"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FIELDBOT_LOG_LEVEL", "INFO")  # asked for explicitly: honoured
    assert main(["export", "--out", "c.xlsx"]) == 0
    assert "INFO reports.export" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["export", "--out"], ["backup", "--out"]])
def test_output_paths(env, capsys, command) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    name = "x.xlsx" if command[0] == "export" else "x.bak"
    (env / "notes.txt").write_text("a file, not a folder")
    capsys.readouterr()

    assert main([*command, f"notes.txt/{name}"]) == 2
    assert "notes.txt là một tệp, không phải thư mục" in one_line(capsys.readouterr().err)

    assert main([*command, f"/sys/{name}"]) == 2  # a folder no one may write, not even root
    assert "Không ghi được vào thư mục /sys" in one_line(capsys.readouterr().err)

    (env / f"folder-{name}").mkdir()
    assert main([*command, f"folder-{name}"]) == 2
    assert f"--out folder-{name} là một thư mục" in one_line(capsys.readouterr().err)

    assert main([*command, f"moi/thang-11/{name}"]) == 0
    out = capsys.readouterr().out
    assert "Đã tạo thư mục moi/thang-11." in out and (env / "moi" / "thang-11" / name).is_file()

    (env / name).write_bytes(b"keep me")
    assert main([*command, name]) == 2
    assert "--force" in one_line(capsys.readouterr().err)
    assert (env / name).read_bytes() == b"keep me"
    assert main([*command, name, "--force"]) == 0
    assert (env / name).read_bytes() != b"keep me"


def test_export_with_photos_checks_the_zip_it_writes(env, capsys) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    (env / "x.zip").write_bytes(b"keep me")
    capsys.readouterr()
    assert main(["export", "--out", "x.xlsx", "--with-photos"]) == 2
    assert "x.zip đã có" in one_line(capsys.readouterr().err)
    assert (env / "x.zip").read_bytes() == b"keep me"


def test_backup_over_the_live_database_is_refused(env, capsys) -> None:
    assert main(["roster", "import", str(EXAMPLE)]) == 0
    before = (env / "cli.db").stat().st_size
    capsys.readouterr()
    for argv in (["backup", "--out", "cli.db"], ["backup", "--out", "./cli.db", "--force"]):
        assert main(argv) == 2
        assert "chính cơ sở dữ liệu đang dùng" in one_line(capsys.readouterr().err)
    assert (env / "cli.db").stat().st_size == before
    assert main(["roster", "list"]) == 0 and "Lê Minh Tiến" in capsys.readouterr().out


def test_restore_without_a_terminal_asks_for_yes(env, capsys, monkeypatch) -> None:
    import io

    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert main(["backup", "--out", "b.bak"]) == 0
    capsys.readouterr()
    assert main(["restore", "khong-co.bak"]) == 2  # the file is checked before anything is asked
    assert "Không tìm thấy tệp sao lưu khong-co.bak" in one_line(capsys.readouterr().err)
    monkeypatch.setattr("sys.stdin", io.StringIO("dong y\n"))  # a pipe is not a terminal
    assert main(["restore", "b.bak"]) == 2
    assert "--yes" in one_line(capsys.readouterr().err)
    assert not list(env.glob("cli.db.before-restore-*"))


def test_restore_on_a_terminal_asks_and_can_be_cancelled(env, capsys, monkeypatch) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert main(["roster", "import", str(EXAMPLE)]) == 0
    assert main(["backup", "--out", "b.bak"]) == 0
    monkeypatch.setattr("sys.stdin", Tty("khong\n"))
    assert main(["restore", "b.bak"]) == 1
    assert "Đã hủy, chưa có gì thay đổi." in capsys.readouterr().out
    assert not list(env.glob("cli.db.before-restore-*"))
    monkeypatch.setattr("sys.stdin", Tty(""))  # Ctrl-D at the question
    assert main(["restore", "b.bak"]) == 2
    assert "--yes" in one_line(capsys.readouterr().err)
    monkeypatch.setattr("sys.stdin", Tty("dong y\n"))
    assert main(["restore", "b.bak"]) == 0
    assert "Đã khôi phục từ b.bak" in capsys.readouterr().out
    assert len(list(env.glob("cli.db.before-restore-*"))) == 1
