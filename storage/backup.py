"""Consistent backup and restore of the database (`fieldbot backup` / `fieldbot restore` drive it).

SQLite: the online backup API, so a backup taken while the bot runs is consistent (never a copy of a
half-written file). PostgreSQL: pg_dump in its custom format, restored with pg_restore --clean.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(Exception):
    pass


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("Cơ sở dữ liệu SQLite trong bộ nhớ không sao lưu được.")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A URL pg_dump understands (no +driver), and the environment for its password."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def backup(url: str, out: Path) -> int:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        src_path = _sqlite_path(url)
        if not src_path.exists():
            raise BackupError(f"Không tìm thấy cơ sở dữ liệu {src_path}.")
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    elif backend == "postgresql":
        if shutil.which("pg_dump") is None:
            raise BackupError("Không tìm thấy lệnh pg_dump (cài gói postgresql-client).")
        dsn, env = _libpq(url)
        proc = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}", f"--dbname={dsn}"],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BackupError(
                f"pg_dump lỗi: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}"
            )
    else:
        raise BackupError(f"Không hỗ trợ sao lưu {backend}.")
    os.replace(tmp, out)
    return out.stat().st_size


def restore(url: str, file: Path) -> None:
    file = Path(file)
    if not file.is_file():
        raise BackupError(f"Không tìm thấy tệp sao lưu {file}.")
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        with open(file, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise BackupError(f"{file} không phải bản sao lưu SQLite.")
        dst_path = _sqlite_path(url)
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        dst = sqlite3.connect(dst_path)
        try:
            src.backup(dst)  # page by page into the live file, under SQLite's own locking
        finally:
            dst.close()
            src.close()
    elif backend == "postgresql":
        if shutil.which("pg_restore") is None:
            raise BackupError("Không tìm thấy lệnh pg_restore (cài gói postgresql-client).")
        dsn, env = _libpq(url)
        proc = subprocess.run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                f"--dbname={dsn}",
                str(file),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BackupError(
                f"pg_restore lỗi: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}"
            )
    else:
        raise BackupError(f"Không hỗ trợ khôi phục {backend}.")
