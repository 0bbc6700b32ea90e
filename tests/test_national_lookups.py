"""What the national sweep relies on (bench/bench_national.py): many ids as one array parameter on PostgreSQL and
as chunks on SQLite (``storage.batching``), and the province escalation's country-wide late items
(``late_in_provinces``) being exactly each district's ``late_items`` that are old enough, whether read or taken
from the rows the sweep's other finders read."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from reports.late import late_in_provinces, late_items, oldest_late_in_provinces
from scheduler.context import SweepContext
from scheduler.rules import find_csdl, find_devices_waiting, find_needs_report, find_pending_review
from storage import batching
from storage.db import session_scope
from storage.models import District, Province, School
from storage.scope import Scope
from tests.factories import add_batch, add_handover, add_student, local


def test_any_of_finds_the_same_rows_as_in_on_both_databases(db_engine, world):
    ids = [world.school_a, world.school_other, 10_000_000] + list(range(20_000_000, 20_001_200))
    with session_scope(db_engine) as s:
        pieces = list(batching.chunks(s, ids))
        assert sum(len(p) for p in pieces) == len(ids)
        assert len(pieces) == (1 if db_engine.dialect.name == "postgresql" else 3)
        found = set()
        for piece in pieces:
            found.update(s.execute(select(School.id).where(batching.any_of(s, School.id, piece))).scalars())
        assert found == {world.school_a, world.school_other}
        assert list(batching.chunks(s, [])) == []


def test_late_in_provinces_is_every_district_late_items_old_enough(db_engine, world, programme):
    w = world
    now = local(2021, 11, 26, 9)  # past the needs-report deadline: every school is late on its report too
    with session_scope(db_engine) as s:
        province = Province(code="BD", name="Tỉnh Bình Dương")
        s.add(province)
        s.flush()
        s.get(District, w.district_id).province_id = province.id  # the other district stays outside
    for day, name in ((date(2021, 11, 18), "Trần Thị Bích"), (date(2021, 11, 24), "Lê Văn Cường")):
        add_handover(
            db_engine,
            programme,
            school_id=w.school_a,
            recorded_by=w.teacher_a,
            handed_over_on=day,
            created_at=local(day.year, day.month, day.day, 9),
            name=name,
        )
    add_handover(
        db_engine,
        programme,
        school_id=w.school_other,
        recorded_by=w.principal_other,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 9),
    )
    add_student(
        db_engine, school_id=w.school_b, registered_by=w.teacher_b, created_at=local(2021, 11, 19), status="pending"
    )
    add_student(
        db_engine, school_id=w.school_b, registered_by=w.teacher_b, created_at=local(2021, 11, 25), status="pending"
    )
    # Computers waiting since 10/11 at school B (late 2 * devices_waiting_days after receipt).
    add_batch(
        db_engine,
        school_id=w.school_b,
        recorded_by=w.principal_b,
        received_on=date(2021, 11, 10),
        created_at=local(2021, 11, 10),
    )
    older_than = timedelta(days=3)
    with session_scope(db_engine) as s:
        expected = [
            i
            for i in late_items(s, scope=Scope(district_id=w.district_id), programme=programme, now=now)
            if now - i.since >= older_than
        ]
        got = late_in_provinces(s, programme=programme, now=now, older_than=older_than)
        everything = late_items(s, scope=Scope(district_id=w.district_id), programme=programme, now=now)
    assert [(i.kind, i.subject_id, i.since, i.school_name) for i in got] == [
        (i.kind, i.subject_id, i.since, i.school_name) for i in expected
    ]
    assert {i.kind for i in got} >= {
        "csdl",
        "devices",
        "needs_report",
        "review",
    }  # the other district's item is not there
    assert all(i.district_id == w.district_id for i in got)
    assert len(got) < len(everything)  # the handover of 24/11 and the registration of 25/11 are not old enough

    # In a sweep the province escalation takes the same items from the rows the other finders read this tick.
    for at in (now, local(2021, 11, 19, 9), local(2021, 12, 20, 9)):  # late, before the report is, much later
        for days in (0, 3, 30):
            with session_scope(db_engine) as s:
                ctx = SweepContext(session=s, programme=programme, now=at)
                for find in (find_needs_report, find_csdl, find_devices_waiting, find_pending_review):
                    list(find(ctx))
                shared = late_in_provinces(
                    s, programme=programme, now=at, older_than=timedelta(days=days), read_already=ctx.late_rows()
                )
                read = late_in_provinces(s, programme=programme, now=at, older_than=timedelta(days=days))
                # ... and learns each district's oldest item (its stage) without making the items, either way.
                oldest = [
                    oldest_late_in_provinces(
                        s, programme=programme, now=at, older_than=timedelta(days=days), read_already=rows
                    )
                    for rows in (ctx.late_rows(), None)
                ]
            assert ctx.late_rows() is not None
            assert [(i.kind, i.subject_id, i.since, i.school_name, i.district_id) for i in shared] == [
                (i.kind, i.subject_id, i.since, i.school_name, i.district_id) for i in read
            ], (at, days)
            first: dict = {}
            for i in read:
                first.setdefault(i.district_id, i.since)
            assert oldest == [first, first], (at, days)
