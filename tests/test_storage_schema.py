"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from storage.db import make_engine, session_scope, upgrade
from storage.models import Batch, Device, Staff, Student


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    assert "ix_handover_csdl_open" in {ix["name"] for ix in inspect(engine).get_indexes("handover")}
    upgrade(engine)  # idempotent: a second start applies nothing
    engine.dispose()


def test_timestamps_round_trip_as_aware_utc(db_engine, world) -> None:
    with session_scope(db_engine) as s:
        st = s.get(Staff, world.teacher_a)
        assert st.created_at.tzinfo is not None and st.created_at.utcoffset() == timedelta(0)


def test_naive_datetime_refused(db_engine, world) -> None:
    with pytest.raises(Exception, match="naive"), session_scope(db_engine) as s:
        st = s.get(Staff, world.teacher_a)
        st.updated_at = datetime(2021, 11, 17, 8, 0)


def _student(world, code: str, now: datetime) -> Student:
    return Student(
        school_id=world.school_a,
        code=code,
        full_name="Nguyễn Văn An",
        birth_date=date(2012, 5, 1),
        gender="male",
        class_name="4A1",
        category="poor",
        need="device",
        registered_by=world.teacher_a,
        created_at=now,
        updated_at=now,
    )


@pytest.mark.parametrize("what", ["student_code", "staff_phone", "device_serial"])
def test_unique_constraints(db_engine, world, clock, what: str) -> None:
    now = clock.now()
    with pytest.raises(IntegrityError), session_scope(db_engine) as s:
        if what == "student_code":
            s.add(_student(world, "0123456789", now))
            s.add(_student(world, "0123456789", now))
        elif what == "staff_phone":
            s.add(
                Staff(
                    full_name="X Y",
                    phone=world.phones["teacher_a"],
                    role="teacher",
                    district_id=world.district_id,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            b = Batch(
                school_id=world.school_a,
                source="programme",
                received_on=date(2021, 11, 20),
                quantity=2,
                device_type="laptop",
                brand_model="Dell",
                condition="mới",
                recorded_by=world.principal_a,
                created_at=now,
            )
            s.add(b)
            s.flush()
            s.add_all([Device(batch_id=b.id, serial="SN1"), Device(batch_id=b.id, serial="SN1")])


def test_foreign_keys_enforced(db_engine, world, clock) -> None:
    with pytest.raises(IntegrityError), session_scope(db_engine) as s:
        st = _student(world, "0123456780", clock.now())
        st.school_id = 999_999
        s.add(st)


def test_session_scope_rolls_back_on_error(db_engine, world, clock) -> None:
    with pytest.raises(RuntimeError), session_scope(db_engine) as s:
        s.add(_student(world, "0123456781", clock.now()))
        s.flush()
        raise RuntimeError("boom")
    with session_scope(db_engine) as s:
        assert s.exec(select(Student)).all() == []


def test_minutes_migration_counts_earlier_minutes_photos_as_signed(db_url: str) -> None:
    """0005_minutes: handovers saved with a minutes photo before the column existed are signed already."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0002")
    now = datetime(2021, 11, 17, 1, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO district (id, code, name) VALUES (1, 'TDM', 'Thủ Dầu Một')"))
        conn.execute(
            text("INSERT INTO school (id, code, name, level, district_id, active) VALUES (1, 'S1', 'S', 'TH', 1, :t)"),
            {"t": True},
        )
        conn.execute(
            text(
                "INSERT INTO staff (id, full_name, phone, role, district_id, school_id, active, language, created_at,"
                " updated_at) VALUES (1, 'A B', '+84901000001', 'teacher', 1, 1, :t, 'vi', :n, :n)"
            ),
            {"t": True, "n": now},
        )
        conn.execute(
            text(
                "INSERT INTO student (id, school_id, code, full_name, birth_date, gender, class_name, category, need,"
                " status, late, registered_by, created_at, updated_at) VALUES (:i, 1, :c, 'A B', :d, 'male', '5A',"
                " 'poor', 'device', 'approved', :f, 1, :n, :n)"
            ),
            [{"i": i, "c": f"010000000{i}", "d": date(2011, 1, 1), "f": False, "n": now} for i in (1, 2)],
        )
        conn.execute(
            text(
                "INSERT INTO batch (id, school_id, source, received_on, quantity, device_type, brand_model, condition,"
                " handed_over, recorded_by, created_at) VALUES (1, 1, 'programme', :d, 2, 'laptop', 'X', 'Mới', 2,"
                " 1, :n)"
            ),
            {"d": date(2021, 11, 15), "n": now},
        )
        conn.execute(
            text(
                "INSERT INTO handover (id, student_id, batch_id, school_id, handed_over_on, recorded_by, status,"
                " csdl_due_at, created_at, updated_at) VALUES (:i, :i, 1, 1, :d, 1, 'active', :n, :n, :n)"
            ),
            [{"i": i, "d": date(2021, 11, 16), "n": now} for i in (1, 2)],
        )
        conn.execute(
            text(
                "INSERT INTO photo (id, sha256, dhash, path, thumb_path, width, height, size_bytes, had_location,"
                " created_at) VALUES (1, :s, 0, 'p', 't', 1, 1, 1, :f, :n)"
            ),
            {"s": "a" * 64, "f": False, "n": now},
        )
        conn.execute(text("INSERT INTO handover_photo (handover_id, photo_id, kind) VALUES (1, 1, 'minutes')"))
    upgrade(engine)
    with engine.connect() as conn:
        signed = dict(conn.execute(text("SELECT id, minutes_signed_at FROM handover ORDER BY id")).all())
    assert signed[1] is not None and signed[2] is None
    engine.dispose()
