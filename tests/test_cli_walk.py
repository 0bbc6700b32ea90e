"""Walk the whole command line as a hurried operator would: every subcommand with a missing argument, an
unknown option, an option without its value, bad paths, bad files, a bad environment and no terminal.

Whatever goes wrong ends the same way: a non-zero exit status (2), exactly one line on stderr that starts with
"Lỗi:", and never a traceback. A new subcommand must be added to VALID below, so it is walked too.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "roster.csv"
FIELDBOT = Path(sys.executable).with_name("fieldbot")

# A correct invocation of every subcommand, in the prepared folder (see `template`).
VALID: dict[tuple[str, ...], list[str]] = {
    ("db", "upgrade"): [],
    ("roster", "import"): ["roster.csv"],
    ("roster", "list"): [],
    ("roster", "code"): ["0901000002"],
    ("chat",): ["--phone", "0901000002"],
    ("run",): [],  # no channel configured here: refused in one line, which is what an operator would see too
    ("sweep",): ["--now", "2021-11-21T08:00:00+07:00", "--dry-run"],
    ("export",): ["--out", "out/tong-hop.xlsx"],
    ("backup",): ["--out", "out/fieldbot.bak"],
    ("restore",): ["--yes", "good.bak"],
    ("minutes",): ["--school", "TH-PHUHOA1", "--out", "out/bien-ban.pdf"],
    ("web", "link"): ["0913860438"],
    # Serving runs until stopped: walked with an address it cannot listen on, which must be one line too.
    ("web", "serve"): ["--listen", "203.0.113.1:8080"],
    ("audit",): ["--since", "01/11/2021"],
    ("purge",): ["--before", "01/01/2020", "--yes"],  # nothing that old: done without asking
    ("students", "erase"): ["0123456789", "--school", "TH-PHUHOA1", "--yes"],
    ("students", "template"): ["--out", "out/mau.xlsx"],
    ("students", "import"): ["lop.xlsx", "--school", "TH-PHUHOA1", "--dry-run"],
}
# run: no channel configured; web serve: an address it cannot listen on; minutes and students erase: the
# walked roster has no handover and no pupil yet. Each refuses in one line, as it would for such a school.
FAILS_EVEN_WHEN_VALID = {("run",), ("web", "serve"), ("minutes",), ("students", "erase")}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out.update(leaves(child, (*path, name)))
    return out or {path: parser}


LEAVES = leaves(build_parser())


def test_every_subcommand_is_walked() -> None:
    assert set(LEAVES) == set(VALID)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A folder with an imported roster, a good backup and an assortment of bad files."""
    folder = tmp_path_factory.mktemp("walk")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDBOT_")}
    env.update(FIELDBOT_DATABASE_URL=f"sqlite:///{folder / 'fieldbot.db'}", FIELDBOT_MEDIA_DIR=str(folder / "media"))
    for argv in (["roster", "import", str(EXAMPLE)], ["backup", "--out", str(folder / "good.bak")]):
        subprocess.run([str(FIELDBOT), *argv], env=env, cwd=folder, check=True, capture_output=True, timeout=120)
    shutil.copy(EXAMPLE, folder / "roster.csv")
    # A class list that passes: the template (its example row fits today's date) with the example numbered.
    subprocess.run(
        [str(FIELDBOT), "students", "template", "--out", str(folder / "lop.xlsx"), "--school", "TH-PHUHOA1"],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=120,
    )
    from openpyxl import load_workbook

    wb = load_workbook(folder / "lop.xlsx")
    wb["Danh sách"]["A4"] = 1
    wb.save(folder / "lop.xlsx")
    (folder / "notes.txt").write_text("một tệp, không phải thư mục")
    (folder / "a-folder.csv").mkdir()
    (folder / "a-folder.bak").mkdir()
    good = (folder / "good.bak").read_bytes()
    (folder / "truncated.bak").write_bytes(good[: len(good) // 3])
    (folder / "zero.bak").write_bytes(b"")
    conn = sqlite3.connect(folder / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    (folder / "pg.dump").write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)
    (folder / "roster.pdf").write_bytes(b"%PDF-1.4")
    (folder / "bad.xlsx").write_bytes(b"not a zip at all")
    (folder / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    (folder / "utf16.csv").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-16")
    (folder / "header-only.csv").write_text(EXAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n")
    (folder / "bad-prog.toml").write_text("this is = = not toml")
    return folder


@pytest.fixture
def walk_env(template, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "w"
    shutil.copytree(template, folder)
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", f"sqlite:///{folder / 'fieldbot.db'}")
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(folder / "media"))
    return folder


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """main() in this process: an exception escaping it (a traceback for the operator) fails the test."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def assert_one_line(code: int, err: str, *words: str) -> str:
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Lỗi: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def files(folder: Path) -> list[str]:
    """What is in the folder, less the -wal/-shm files SQLite keeps beside an open database."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


ROSTER_PEOPLE = len(EXAMPLE.read_text(encoding="utf-8").splitlines()) - 1  # one person a row after the header


def rows_in_place(folder: Path) -> int:
    conn = sqlite3.connect(folder / "fieldbot.db")
    try:
        return conn.execute("SELECT count(*) FROM staff").fetchone()[0]
    finally:
        conn.close()


# --- arguments ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_unknown_option(walk_env, capsys, path) -> None:
    code, _, err = run_cli(capsys, [*path, *VALID[path], "--khong-co"])
    assert_one_line(code, err, "tham số không nhận ra: --khong-co")


def _required(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.required]


def _valued_options(parser: argparse.ArgumentParser) -> list[str]:
    return [a.option_strings[-1] for a in parser._actions if a.option_strings and isinstance(a, argparse._StoreAction)]


@pytest.mark.parametrize("path", sorted(p for p, parser in LEAVES.items() if _required(parser)), ids=" ".join)
def test_missing_argument(walk_env, capsys, path) -> None:
    code, out, err = run_cli(capsys, list(path))
    assert_one_line(code, err, "thiếu tham số bắt buộc", f"fieldbot {' '.join(path)} --help")
    assert out == ""


@pytest.mark.parametrize(
    ("path", "option"),
    sorted({(p, o) for p, parser in LEAVES.items() for o in _valued_options(parser)}),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_option_without_its_value(walk_env, capsys, path, option) -> None:
    code, _, err = run_cli(capsys, [*path, option])
    assert_one_line(code, err, option)


def test_no_command_at_all(walk_env, capsys) -> None:
    code, _, err = run_cli(capsys, [])
    assert_one_line(code, err, "thiếu tham số bắt buộc: LỆNH")


# --- bad paths and bad files --------------------------------------------------------------------------------------


BAD_INPUTS = [
    (["restore", "--yes", "khong-co.bak"], "Không tìm thấy tệp sao lưu"),
    (["restore", "--yes", "a-folder.bak"], "không phải một tệp"),
    (["restore", "--yes", "notes.txt"], "không phải bản sao lưu SQLite"),
    (["restore", "--yes", "zero.bak"], "không phải bản sao lưu SQLite"),
    (["restore", "--yes", "other.db"], "không phải bản sao lưu của fieldbot"),
    (["restore", "--yes", "truncated.bak"], "hỏng"),
    (["restore", "--yes", "pg.dump"], "PostgreSQL"),
    (["restore", "--yes", "fieldbot.db"], "chính cơ sở dữ liệu"),
    (["backup", "--out", "fieldbot.db"], "chính cơ sở dữ liệu"),
    (["backup", "--out", "fieldbot.db", "--force"], "chính cơ sở dữ liệu"),
    (["backup", "--out", "notes.txt/x.bak"], "notes.txt là một tệp"),
    (["backup", "--out", "/sys/x.bak"], "Không ghi được vào thư mục /sys"),
    (["backup", "--out", "a-folder.bak"], "là một thư mục"),
    (["backup", "--out", "good.bak"], "--force"),
    (["export", "--out", "notes.txt/x.xlsx"], "notes.txt là một tệp"),
    (["export", "--out", "notes.txt/sub/x.xlsx"], "notes.txt là một tệp"),
    (["export", "--out", "/sys/x.xlsx"], "Không ghi được vào thư mục /sys"),
    (["export", "--out", "/proc/x.xlsx"], "/proc"),
    (["export", "--out", "roster.csv"], ".xlsx"),
    (["export", "--out", "x.zip"], "--with-photos"),
    (["export", "--out", "x.xlsx", "--school", "KHONGCO"], "KHONGCO"),
    (["export", "--out", "x.xlsx", "--district", "KHONGCO"], "KHONGCO"),
    (["roster", "import", "khong-co.csv"], "Không tìm thấy"),
    (["roster", "import", "a-folder.csv"], "không phải một tệp"),
    (["roster", "import", "roster.pdf"], "CSV hoặc XLSX"),
    (["roster", "import", "bad.xlsx"], "XLSX"),
    (["roster", "import", "binary.csv"], "CSV"),
    (["roster", "import", "utf16.csv"], "CSV UTF-8"),
    (["roster", "import", "header-only.csv"], "chưa có dòng dữ liệu nào"),
    (["roster", "import", "notes.txt"], "CSV hoặc XLSX"),
    (["roster", "code", "abc"], "không hợp lệ"),
    (["roster", "code", "0909999999"], "không có trong danh sách"),
    (["chat", "--phone", "abc"], "không hợp lệ"),
    (["chat", "--phone", ""], "thiếu số điện thoại"),
    (["chat", "--phone", "0909999999"], "không có trong danh sách"),
    (["sweep", "--now", "hôm qua"], "--now"),
    (["sweep", "--now", "2021-13-45"], "--now"),
]


@pytest.mark.parametrize(("argv", "words"), BAD_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_path_or_file(walk_env, capsys, argv, words) -> None:
    before = rows_in_place(walk_env)
    listing = files(walk_env)
    code, out, err = run_cli(capsys, argv)
    assert_one_line(code, err, words)
    assert "Đã " not in out  # nothing claims to have been done
    assert rows_in_place(walk_env) == before
    assert files(walk_env) == listing  # no save, no partial file, no stray folder


# --- a bad environment --------------------------------------------------------------------------------------------

BAD_ENV = [
    ("FIELDBOT_LOG_LEVEL", "LOUD", "FIELDBOT_LOG_LEVEL"),
    ("FIELDBOT_DATABASE_URL", "mysql://x@localhost/db", "FIELDBOT_DATABASE_URL"),
    ("FIELDBOT_DATABASE_URL", "sqlite:///notes.txt/x.db", "notes.txt"),
    ("FIELDBOT_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none", ""),
    ("FIELDBOT_MEDIA_DIR", "notes.txt/media", "notes.txt"),
    ("FIELDBOT_PROGRAMME", "khong-co.toml", "khong-co.toml"),
    ("FIELDBOT_PROGRAMME", "bad-prog.toml", "bad-prog.toml"),
]
# Commands that never use a setting are right to succeed when only that setting is wrong.
UNUSED = {
    "FIELDBOT_MEDIA_DIR": {("backup",), ("restore",)},
    "FIELDBOT_PROGRAMME": {("backup",), ("restore",)},
}


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
@pytest.mark.parametrize(("name", "value", "words"), BAD_ENV, ids=lambda v: str(v)[:24])
def test_bad_environment(walk_env, capsys, monkeypatch, path, name, value, words) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run_cli(capsys, [*path, *VALID[path]])
    if path in UNUSED.get(name, set()):
        assert code == 0 and err == "", err
        return
    if path in FAILS_EVEN_WHEN_VALID:
        assert_one_line(code, err)
        return
    assert_one_line(code, err, words)


# --- no terminal --------------------------------------------------------------------------------------------------


class _Closed(io.StringIO):
    def __init__(self) -> None:
        super().__init__("")
        self.close()


@pytest.mark.parametrize("stdin", ["closed", "not a tty"])
@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_no_terminal(walk_env, capsys, monkeypatch, path, stdin) -> None:
    """Without a terminal every command either does its job without asking or refuses in one line."""
    monkeypatch.setattr("sys.stdin", _Closed() if stdin == "closed" else io.StringIO(""))
    argv = [a for a in VALID[path] if a != "--yes"]  # restore must not fall back to asking
    code, out, err = run_cli(capsys, [*path, *argv])
    if path == ("restore",):
        assert_one_line(code, err, "--yes")
        assert rows_in_place(walk_env) == ROSTER_PEOPLE and not list(walk_env.glob("fieldbot.db.before-restore-*"))
    elif path == ("chat",) and stdin == "closed":
        assert_one_line(code, err, "stdin")
    elif path in FAILS_EVEN_WHEN_VALID:
        assert_one_line(code, err)
    else:
        assert code == 0 and err == "", err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "words"),
    [(["restore", "good.bak"], "--yes"), (["chat", "--phone", "0901000002"], "stdin")],
)
def test_real_process_with_stdin_closed(template, tmp_path, argv, words) -> None:
    """The same from a real process started with stdin closed (cron, systemd): `<&-` in a shell."""
    folder = tmp_path / "w"
    shutil.copytree(template, folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDBOT_")}
    env.update(FIELDBOT_DATABASE_URL=f"sqlite:///{folder / 'fieldbot.db'}", FIELDBOT_MEDIA_DIR=str(folder / "media"))
    proc = subprocess.run(
        ["sh", "-c", '"$0" "$@" <&-', str(FIELDBOT), *argv],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line(proc.returncode, proc.stderr, words)
    assert rows_in_place(folder) == ROSTER_PEOPLE
