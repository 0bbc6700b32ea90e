"""Consistent backup and restore of the database (`fieldbot backup` / `fieldbot restore` drive it).

SQLite: the online backup API, so a backup taken while the bot runs is consistent (never a copy of a
half-written file). PostgreSQL: pg_dump in its custom format, restored with pg_restore --clean in one
transaction.

A restore overwrites every record, so before it touches anything it checks that the file is a fieldbot
backup it can migrate (SQLite: ``PRAGMA integrity_check``, an ``alembic_version`` with a revision this
version knows, the programme's tables; PostgreSQL: the same read from ``pg_restore --list`` and the
dump's ``alembic_version`` rows), and it first saves the current database beside it so the restore can be
undone with another restore.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from core.clock import UTC
from storage.db import MIGRATIONS

# Tables every fieldbot schema has had since the first migration: a file without them is not ours.
REQUIRED_TABLES = frozenset(
    {"district", "school", "staff", "student", "sponsor", "batch", "handover", "notification", "conversation"}
)
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"


class BackupError(Exception):
    """One line for the operator; nothing was changed."""


@dataclass
class BackupInfo:
    """What a checked backup file holds."""

    path: Path
    backend: str
    revision: str


@dataclass
class RestoreResult:
    info: BackupInfo
    saved_to: Path | None  # the database as it was before the restore (None: there was none)


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _stamp(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("Cơ sở dữ liệu SQLite trong bộ nhớ không sao lưu được.")
    return Path(database).expanduser()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A URL pg_dump understands (no +driver), and the environment for its password."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _last_line(text: str | None, fallback: object) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(fallback)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- backup ---------------------------------------------------------------------------------------------------


def check_target(url: str, out: Path) -> None:
    """Refuse to write a backup over the live SQLite database itself (whatever path names it)."""
    if make_url(url).get_backend_name() == "sqlite" and _same_file(_sqlite_path(url), Path(out)):
        raise BackupError(f"{out} là chính cơ sở dữ liệu đang dùng: hãy chọn một tệp khác để sao lưu.")


def backup(url: str, out: Path) -> int:
    """Write a backup of the database at ``url`` to ``out`` (created only when complete); its size in bytes."""
    out = Path(out)
    backend = make_url(url).get_backend_name()
    check_target(url, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"Không tạo được thư mục {out.parent}: {_os_reason(exc)}.") from None
    tmp = out.with_name(out.name + ".partial")
    try:
        if backend == "sqlite":
            _sqlite_copy(_sqlite_path(url), tmp)
        elif backend == "postgresql":
            _pg_dump(url, tmp)
        else:
            raise BackupError(f"Không hỗ trợ sao lưu {backend}.")
        os.replace(tmp, out)
    except OSError as exc:
        raise BackupError(f"Không ghi được {out}: {_os_reason(exc)}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size


def _sqlite_copy(src_path: Path, dst_path: Path) -> None:
    """A consistent copy of a live SQLite file, through SQLite's own locking."""
    if not src_path.is_file():
        raise BackupError(f"Không tìm thấy cơ sở dữ liệu {src_path}.")
    try:
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(dst_path)
            try:
                src.backup(dst)
                # One self-contained file: a WAL-mode copy would grow -wal/-shm files beside it when read.
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Không sao lưu được {src_path} vào {dst_path}: {exc}.") from None


def _pg_dump(url: str, out: Path) -> None:
    if shutil.which("pg_dump") is None:
        raise BackupError("Không tìm thấy lệnh pg_dump (cài gói postgresql-client).")
    dsn, env = _libpq(url)
    proc = subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={out}", f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_dump lỗi: {_last_line(proc.stderr, proc.returncode)}")


# --- checking a backup -----------------------------------------------------------------------------------------


def _judge(file: Path, tables: set[str], revision: str | None) -> str:
    """The revision, or BackupError when the file is not a fieldbot backup this version can migrate."""
    if "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:5]) or "không có bảng nào"
        raise BackupError(f"{file} không phải bản sao lưu của fieldbot (không có bảng alembic_version; có: {shown}).")
    missing = sorted(REQUIRED_TABLES - tables)
    if missing:
        raise BackupError(f"{file} không phải bản sao lưu đầy đủ của fieldbot (thiếu bảng {', '.join(missing)}).")
    if not revision:
        raise BackupError(f"{file} không ghi phiên bản lược đồ (bảng alembic_version trống).")
    if revision not in known_revisions():
        raise BackupError(
            f"{file} có lược đồ phiên bản {revision}, phiên bản fieldbot này không biết "
            "(bản sao lưu từ một phiên bản fieldbot mới hơn?): hãy cập nhật fieldbot trước."
        )
    return revision


def inspect_backup(url: str, file: Path) -> BackupInfo:
    """Check, without changing anything, that ``file`` is a fieldbot backup for this database's backend."""
    file = Path(file)
    if not file.exists():
        raise BackupError(f"Không tìm thấy tệp sao lưu {file}.")
    if not file.is_file():
        raise BackupError(f"{file} không phải một tệp.")
    try:
        with open(file, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BackupError(f"Không đọc được {file}: {_os_reason(exc)}.") from None
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        if _same_file(_sqlite_path(url), file):
            raise BackupError(f"{file} là chính cơ sở dữ liệu đang dùng, không phải một bản sao lưu.")
        if head != SQLITE_MAGIC:
            hint = " (đây là bản sao lưu PostgreSQL)" if head.startswith(PG_MAGIC) else ""
            raise BackupError(f"{file} không phải bản sao lưu SQLite của fieldbot{hint}.")
        return BackupInfo(path=file, backend=backend, revision=_check_sqlite(file))
    if backend == "postgresql":
        if not head.startswith(PG_MAGIC):
            hint = " (đây là tệp SQLite)" if head == SQLITE_MAGIC else ""
            raise BackupError(f"{file} không phải bản sao lưu PostgreSQL (pg_dump) của fieldbot{hint}.")
        return BackupInfo(path=file, backend=backend, revision=_check_pg_dump(file))
    raise BackupError(f"Không hỗ trợ khôi phục {backend}.")


def _open_readonly(file: Path) -> sqlite3.Connection:
    """Read a backup as it is, creating nothing beside it (immutable), unless a -wal file next to it holds
    part of its data (a copy of a live database): then through SQLite's normal read-only path."""
    if Path(f"{file}-wal").exists():
        return sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    return sqlite3.connect(f"file:{file}?mode=ro&immutable=1", uri=True)


def _check_sqlite(file: Path) -> str:
    try:
        conn = _open_readonly(file)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise BackupError(f"{file} bị hỏng hoặc không đầy đủ: {problems[0]}.")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = None
            if "alembic_version" in tables:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = row[0] if row else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{file} bị hỏng hoặc không đầy đủ ({exc}).") from None
    return _judge(file, tables, revision)


def _check_pg_dump(file: Path) -> str:
    if shutil.which("pg_restore") is None:
        raise BackupError("Không tìm thấy lệnh pg_restore (cài gói postgresql-client).")
    listing = subprocess.run(["pg_restore", "--list", str(file)], capture_output=True, text=True)
    if listing.returncode != 0:
        raise BackupError(f"{file} không đọc được bằng pg_restore: {_last_line(listing.stderr, listing.returncode)}")
    tables: set[str] = set()
    for line in listing.stdout.splitlines():
        if line.startswith(";") or ";" not in line:
            continue
        # "215; 1259 16390 TABLE public alembic_version postgres"
        words = line.split(";", 1)[1].split()
        if len(words) >= 5 and words[2] == "TABLE":
            tables.add(words[4])
    revision = None
    if "alembic_version" in tables:
        data = subprocess.run(
            ["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(file)],
            capture_output=True,
            text=True,
        )
        if data.returncode != 0:
            raise BackupError(f"{file} bị hỏng hoặc không đầy đủ: {_last_line(data.stderr, data.returncode)}")
        revision = _copy_rows(data.stdout)
    return _judge(file, tables, revision)


def _copy_rows(sql: str) -> str | None:
    """The first data row of the COPY block pg_restore prints for alembic_version."""
    inside = False
    for line in sql.splitlines():
        if line.startswith("COPY ") and "alembic_version" in line:
            inside = True
        elif inside:
            return None if line == "\\." else line.strip()
    return None


# --- restore ---------------------------------------------------------------------------------------------------


def restore(url: str, file: Path, *, now: datetime) -> RestoreResult:
    """Replace the database at ``url`` with the backup ``file``, after checking the file and saving the
    current database beside it (SQLite: ``<db>.before-restore-<UTC>``; PostgreSQL: a pg_dump file
    ``<database>.before-restore-<UTC>.dump`` beside ``file``). Raises BackupError with nothing changed."""
    info = inspect_backup(url, file)
    stamp = _stamp(now)
    if info.backend == "sqlite":
        saved = _restore_sqlite(_sqlite_path(url), info.path, stamp)
    else:
        saved = _restore_pg(url, info.path, stamp)
    return RestoreResult(info=info, saved_to=saved)


def _free_name(path: Path) -> Path:
    """``path``, or ``name-2``, ``name-3``... when two restores fall in the same second: never overwrite a save."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}") if path.suffix == ".dump" else Path(f"{path}-{n}")
    return candidate


def _restore_sqlite(dst_path: Path, file: Path, stamp: str) -> Path | None:
    saved = None
    if dst_path.exists():
        saved = _free_name(dst_path.with_name(f"{dst_path.name}.before-restore-{stamp}"))
        tmp = saved.with_name(saved.name + ".partial")
        try:
            _sqlite_copy(dst_path, tmp)
            os.replace(tmp, saved)
        except OSError as exc:
            raise BackupError(f"Không lưu được dữ liệu hiện tại vào {saved}: {_os_reason(exc)}.") from None
        finally:
            tmp.unlink(missing_ok=True)
    else:
        try:
            dst_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"Không tạo được thư mục {dst_path.parent}: {_os_reason(exc)}.") from None
    try:
        src = _open_readonly(file)
        try:
            dst = sqlite3.connect(dst_path)
            try:
                src.backup(dst)  # one transaction into the live file, under SQLite's own locking
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Khôi phục không thành công ({exc}); dữ liệu trước đó vẫn còn trong {saved}.") from None
    return saved


def _restore_pg(url: str, file: Path, stamp: str) -> Path:
    database = make_url(url).database or "postgres"
    saved = _free_name(file.resolve().parent / f"{database}.before-restore-{stamp}.dump")
    tmp = saved.with_name(saved.name + ".partial")
    try:
        _pg_dump(url, tmp)
        os.replace(tmp, saved)
    except OSError as exc:
        raise BackupError(f"Không lưu được dữ liệu hiện tại vào {saved}: {_os_reason(exc)}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    dsn, env = _libpq(url)
    proc = subprocess.run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",  # all or nothing: a broken dump leaves the database as it was
            f"--dbname={dsn}",
            str(file),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BackupError(
            f"pg_restore lỗi, chưa có gì thay đổi: {_last_line(proc.stderr, proc.returncode)} "
            f"(bản lưu dữ liệu hiện tại: {saved})"
        )
    return saved
