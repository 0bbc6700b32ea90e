"""Backups restore every record, on SQLite and on PostgreSQL; a restore of anything that is not a fieldbot
backup (a foreign database, a truncated or damaged file, a newer schema) is refused with one line and leaves
every record in place; a restore first saves the current database, and restoring that save undoes it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from bot.cli import main
from storage.backup import BackupError, backup, check_target, inspect_backup, restore
from storage.db import make_engine, session_scope, upgrade
from storage.models import Staff, Student
from tests.conftest import PG_URL, require_postgres
from tests.factories import seed_world


def _head() -> str:
    from alembic.script import ScriptDirectory

    from storage.db import MIGRATIONS

    (head,) = ScriptDirectory(str(MIGRATIONS)).get_heads()
    return head


HEAD = _head()  # the revision a freshly migrated database (and so its backup) is at


def _add_students(engine, world, now, n: int, *, first: int = 0) -> None:
    with session_scope(engine) as s:
        for i in range(first, first + n):
            s.add(
                Student(
                    school_id=world.school_a,
                    code=f"{7900000000 + i}",
                    full_name=f"Nguyễn Văn Số {i}",
                    birth_date=date(2012, 1, 1),
                    gender="male",
                    class_name="4A1",
                    category="poor",
                    need="device",
                    registered_by=world.teacher_a,
                    created_at=now,
                    updated_at=now,
                )
            )


def _counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return (
                s.exec(select(func.count()).select_from(Staff)).scalar_one(),
                s.exec(select(func.count()).select_from(Student)).scalar_one(),
            )
    finally:
        engine.dispose()


def _live(url: str, clock, students: int = 25):
    """A migrated database (with alembic_version, as `fieldbot run` leaves it) holding a roster and students."""
    engine = make_engine(url)
    upgrade(engine)
    world = seed_world(engine, now=clock.now())
    _add_students(engine, world, clock.now(), students)
    return engine, world


def _sqlite_file(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()
    return path


# --- SQLite -----------------------------------------------------------------------------------------------------


def test_sqlite_backup_and_restore_saves_the_current_database_first(tmp_path, clock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine, world = _live(url, clock)
    before = _counts(url)
    size = backup(url, tmp_path / "b" / "fieldbot.bak")
    assert size == (tmp_path / "b" / "fieldbot.bak").stat().st_size
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["fieldbot.bak"]  # one self-contained file
    _add_students(engine, world, clock.now(), 3, first=100)  # written after the backup
    engine.dispose()
    after_backup = _counts(url)
    assert after_backup[1] == before[1] + 3

    result = restore(url, tmp_path / "b" / "fieldbot.bak", now=clock.now())
    assert _counts(url) == before
    assert result.info.revision == HEAD
    assert result.saved_to == tmp_path / "live.db.before-restore-20211117T010000Z"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["fieldbot.bak"]  # reading it made no -wal

    # The save is itself a backup: restoring it undoes the restore.
    clock.advance(timedelta(minutes=1))
    undo = restore(url, result.saved_to, now=clock.now())
    assert _counts(url) == after_backup
    assert undo.saved_to == tmp_path / "live.db.before-restore-20211117T010100Z"


def test_restore_refuses_a_non_backup(tmp_path, clock) -> None:
    bogus = tmp_path / "x.bak"
    bogus.write_text("hello")
    with pytest.raises(BackupError, match="không phải bản sao lưu"):
        restore(f"sqlite:///{tmp_path / 'live.db'}", bogus, now=clock.now())
    with pytest.raises(BackupError, match="Không tìm thấy"):
        restore(f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "missing.bak", now=clock.now())
    with pytest.raises(BackupError, match="không phải một tệp"):
        restore(f"sqlite:///{tmp_path / 'live.db'}", tmp_path, now=clock.now())


def _bad_sqlite_backups(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Files that must never replace a database, with the words the refusal must contain."""
    data = good.read_bytes()
    truncated = tmp_path / "truncated.bak"
    truncated.write_bytes(data[: len(data) // 3])
    damaged = tmp_path / "damaged.bak"
    page = int.from_bytes(data[16:18], "big")
    middle = bytearray(data)
    for offset in range(2 * page, len(data) - page, page):  # scribble over every page's header but the first two
        middle[offset : offset + 8] = b"\xff" * 8
    damaged.write_bytes(bytes(middle))
    newer = tmp_path / "newer.bak"
    newer.write_bytes(data)
    _sqlite_file(newer, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    unversioned = tmp_path / "unversioned.bak"
    unversioned.write_bytes(data)
    _sqlite_file(unversioned, "DELETE FROM alembic_version")
    partial = tmp_path / "partial.bak"
    partial.write_bytes(data)
    _sqlite_file(partial, "DROP TABLE handover_photo", "DROP TABLE handover")
    return {
        "foreign": (_sqlite_file(tmp_path / "other.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"), "alembic"),
        "empty sqlite": (_sqlite_file(tmp_path / "empty.db", "CREATE TABLE x (y)", "DROP TABLE x"), "alembic"),
        "truncated": (truncated, "hỏng"),
        "damaged": (damaged, "hỏng"),
        "newer schema": (newer, "9999_from_the_future"),
        "no revision": (unversioned, "alembic_version trống"),
        "missing tables": (partial, "handover"),
        "zero bytes": (tmp_path / "zero.bak", "không phải bản sao lưu"),
    }


@pytest.mark.parametrize(
    "kind",
    ["foreign", "empty sqlite", "truncated", "damaged", "newer schema", "no revision", "missing tables", "zero bytes"],
)
def test_sqlite_restore_refuses_what_is_not_a_fieldbot_backup(tmp_path, clock, kind) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine, _ = _live(url, clock)
    engine.dispose()
    good = tmp_path / "good.bak"
    backup(url, good)
    (tmp_path / "zero.bak").write_bytes(b"")
    before = _counts(url)
    file, words = _bad_sqlite_backups(tmp_path, good)[kind]
    listing = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BackupError, match=words) as info:
        restore(url, file, now=clock.now())
    assert len(str(info.value).splitlines()) == 1
    assert _counts(url) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no save made, nothing created beside the file


def test_restore_refuses_the_live_database_itself(tmp_path, clock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _live(url, clock)[0].dispose()
    with pytest.raises(BackupError, match="chính cơ sở dữ liệu"):
        restore(url, tmp_path / "live.db", now=clock.now())
    with pytest.raises(BackupError, match="chính cơ sở dữ liệu"):
        check_target(url, tmp_path / "." / "live.db")
    with pytest.raises(BackupError, match="chính cơ sở dữ liệu"):
        backup(url, tmp_path / "live.db")
    assert _counts(url)[1] == 25


def test_restore_into_a_missing_database_creates_it(tmp_path, clock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    _live(url, clock)[0].dispose()
    backup(url, tmp_path / "a.bak")
    fresh = f"sqlite:///{tmp_path / 'new' / 'fresh.db'}"
    result = restore(fresh, tmp_path / "a.bak", now=clock.now())
    assert result.saved_to is None and _counts(fresh) == _counts(url)


def test_an_older_schema_is_accepted_and_migrated(tmp_path, clock, monkeypatch) -> None:
    """A backup at any revision this version knows is restored (the CLI then migrates it to head)."""
    import storage.backup as backup_module

    url = f"sqlite:///{tmp_path / 'live.db'}"
    _live(url, clock)[0].dispose()
    old = tmp_path / "old.bak"
    backup(url, old)
    _sqlite_file(old, "UPDATE alembic_version SET version_num = '0000_older'")
    monkeypatch.setattr(backup_module, "known_revisions", lambda: {"0000_older", HEAD})
    assert inspect_backup(url, old).revision == "0000_older"


# --- the command line -------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    return tmp_path


def test_cli_restore_of_a_foreign_file_keeps_every_record(cli_env, clock, monkeypatch, capsys) -> None:
    url = f"sqlite:///{cli_env / 'fieldbot.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    _live(url, clock)[0].dispose()
    before = _counts(url)
    other = _sqlite_file(cli_env / "other.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    for argv in (["restore", "--yes", str(other)], ["restore", str(other)]):
        capsys.readouterr()
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert "không phải bản sao lưu của fieldbot" in err and len(err.strip().splitlines()) == 1
        assert "Đã khôi phục" not in out and "Traceback" not in err
        assert _counts(url) == before
    assert not list(cli_env.glob("fieldbot.db.before-restore-*"))


def test_cli_backup_and_restore_round_trip_and_undo(cli_env, clock, monkeypatch, capsys) -> None:
    url = f"sqlite:///{cli_env / 'fieldbot.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    engine, world = _live(url, clock)
    assert main(["backup", "--out", "backups/today.bak"]) == 0
    out = capsys.readouterr().out
    assert "Đã tạo thư mục backups." in out and "Đã sao lưu vào backups/today.bak" in out
    _add_students(engine, world, clock.now(), 2, first=500)
    engine.dispose()
    assert main(["restore", "--yes", "backups/today.bak"]) == 0
    out = capsys.readouterr().out
    saved = next(cli_env.glob("fieldbot.db.before-restore-*"))
    assert f"đã lưu ở {saved}" in out and f"fieldbot restore {saved})" in out
    assert f"Đã khôi phục từ backups/today.bak (lược đồ {HEAD})." in out
    assert _counts(url)[1] == 25
    assert main(["restore", "--yes", saved.name]) == 0  # the printed undo works
    assert _counts(url)[1] == 27


# --- PostgreSQL -------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_database():
    """A database of its own (pg_restore --clean works on whole schemas): created here, dropped here."""
    require_postgres()
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    names = []

    def make() -> str:
        name = f"fb_backup_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return PG_URL.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_postgres_backup_and_restore(tmp_path, clock, pg_database) -> None:
    url = pg_database()
    engine, _ = _live(url, clock, students=10)
    before = _counts(url)
    backup(url, tmp_path / "pg.dump")
    with session_scope(engine) as s:
        s.exec(Student.__table__.delete())
    engine.dispose()
    result = restore(url, tmp_path / "pg.dump", now=clock.now())
    assert _counts(url) == before
    assert result.info.revision == HEAD
    assert result.saved_to is not None and result.saved_to.parent == tmp_path
    assert result.saved_to.name.endswith(".before-restore-20211117T010000Z.dump")
    assert inspect_backup(url, result.saved_to).revision == HEAD  # the save is a fieldbot backup too
    restore(url, result.saved_to, now=clock.now() + timedelta(seconds=1))  # undo: the students are gone again
    assert _counts(url) == (before[0], 0)


def _pg_dump(url: str, out: Path) -> Path:
    from storage.backup import _pg_dump as dump

    dump(url, out)
    return out


@pytest.mark.postgres
def test_postgres_restore_refuses_foreign_truncated_and_sqlite_files(tmp_path, clock, pg_database) -> None:
    url = pg_database()
    _live(url, clock, students=10)[0].dispose()
    before = _counts(url)
    good = _pg_dump(url, tmp_path / "good.dump")
    foreign_url = pg_database()
    foreign = create_engine(foreign_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with foreign.begin() as conn:
        conn.execute(text("CREATE TABLE t (x int)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    foreign.dispose()
    foreign_dump = _pg_dump(foreign_url, tmp_path / "foreign.dump")
    truncated = tmp_path / "truncated.dump"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    sqlite_file = _sqlite_file(tmp_path / "x.db", "CREATE TABLE t (x)")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("không phải bản sao lưu")
    for file, words in (
        (foreign_dump, "alembic_version"),
        (truncated, "pg_restore"),
        (sqlite_file, "SQLite"),
        (text_file, "không phải bản sao lưu PostgreSQL"),
    ):
        with pytest.raises(BackupError, match=words) as info:
            restore(url, file, now=clock.now())
        assert len(str(info.value).splitlines()) == 1, info.value
        assert _counts(url) == before


@pytest.mark.postgres
def test_postgres_cli_restore_of_a_foreign_dump_keeps_every_record(
    cli_env, clock, pg_database, monkeypatch, capsys
) -> None:
    url = pg_database()
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    _live(url, clock, students=10)[0].dispose()
    before = _counts(url)
    foreign_url = pg_database()
    proc = subprocess.run(
        ["psql", "-q", f"--dbname={foreign_url.replace('+psycopg', '')}", "-c", "CREATE TABLE t (x int)"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    _pg_dump(foreign_url, cli_env / "other.dump")
    assert main(["restore", "--yes", "other.dump"]) == 2
    out, err = capsys.readouterr()
    assert "alembic_version" in err and len(err.strip().splitlines()) == 1 and "Đã khôi phục" not in out
    assert _counts(url) == before
    assert not list(cli_env.glob("*.before-restore-*"))
