"""Backups restore every record, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from storage.backup import BackupError, backup, restore
from storage.db import create_all, make_engine, session_scope
from storage.models import Staff, Student
from tests.conftest import PG_URL, require_postgres
from tests.factories import seed_world


def _add_students(engine, world, now, n: int) -> None:
    from datetime import date

    with session_scope(engine) as s:
        for i in range(n):
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


def _counts(engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        return (
            s.exec(select(func.count()).select_from(Staff)).scalar_one(),
            s.exec(select(func.count()).select_from(Student)).scalar_one(),
        )


def test_sqlite_backup_and_restore(tmp_path, clock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    create_all(engine)
    world = seed_world(engine, now=clock.now())
    _add_students(engine, world, clock.now(), 25)
    before = _counts(engine)
    backup(url, tmp_path / "b" / "fieldbot.bak")
    with session_scope(engine) as s:  # disaster strikes after the backup
        s.exec(Student.__table__.delete())
    assert _counts(engine)[1] == 0
    engine.dispose()
    restore(url, tmp_path / "b" / "fieldbot.bak")
    engine = make_engine(url)
    assert _counts(engine) == before
    with session_scope(engine) as s:
        names = set(s.exec(select(Student.full_name)).scalars())
    assert "Nguyễn Văn Số 24" in names
    engine.dispose()


def test_restore_refuses_a_non_backup(tmp_path) -> None:
    bogus = tmp_path / "x.bak"
    bogus.write_text("hello")
    with pytest.raises(BackupError, match="không phải bản sao lưu"):
        restore(f"sqlite:///{tmp_path / 'live.db'}", bogus)
    with pytest.raises(BackupError, match="Không tìm thấy"):
        restore(f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "missing.bak")


@pytest.mark.postgres
def test_postgres_backup_and_restore(tmp_path, clock) -> None:
    require_postgres()
    name = f"fb_backup_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = make_engine(url)
        create_all(engine)
        world = seed_world(engine, now=clock.now())
        _add_students(engine, world, clock.now(), 10)
        before = _counts(engine)
        backup(url, tmp_path / "pg.dump")
        with session_scope(engine) as s:
            s.exec(Student.__table__.delete())
        engine.dispose()
        restore(url, tmp_path / "pg.dump")
        engine = make_engine(url)
        assert _counts(engine) == before
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
