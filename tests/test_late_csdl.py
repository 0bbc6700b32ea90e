"""Late is late: a handover confirmed in the sector database after its deadline is counted as late (apart
from the ones still open) in the chat summary, the morning digest and the workbook, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import openpyxl
from sqlalchemy import select

from reports.export import export_workbook
from reports.summary import build_summary, format_summary
from scheduler.context import SweepContext
from scheduler.digest import build_digest
from storage.db import session_scope
from storage.models import Handover
from storage.scope import Scope
from tests.test_reports_data import seed_reports


def _confirm_late(db, handover_id: int, *, days_after_due: float) -> None:
    with session_scope(db) as s:
        h = s.get(Handover, handover_id)
        h.csdl_updated_at = h.csdl_due_at + timedelta(days=days_after_due)
        s.add(h)


def test_late_confirmed_is_counted_apart_from_late_open(db_engine, world, clock, programme, tmp_path) -> None:
    seeded = seed_reports(db_engine, world, now=clock.now(), programme=programme)
    # School A's late handover (due end of 16/11) is confirmed a day after its deadline; school B's stays open.
    _confirm_late(db_engine, seeded.handovers["late"], days_after_due=0.25)  # 06:00 on 17/11, local
    now = clock.now()
    with session_scope(db_engine) as s:
        summary = build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=now)
    b, a = summary.schools
    assert (a.late_csdl, a.late_csdl_confirmed) == (0, 1)  # before the fix: 0 and no such count
    assert (b.late_csdl, b.late_csdl_confirmed) == (1, 0)
    assert (summary.totals.late_csdl, summary.totals.late_csdl_confirmed) == (1, 1)
    text = format_summary(summary)
    assert "Trễ cập nhật CSDL ngành: 2" in text and "1 chưa cập nhật, 1 đã cập nhật sau hạn" in text
    assert "⏱CSDL 1" in text  # school A's line marks the late confirmation

    # The on-time confirmation of the seed (confirmed before its due) is not late.
    with session_scope(db_engine) as s:
        on_time = s.get(Handover, seeded.handovers["confirmed"])
        assert on_time.csdl_updated_at < on_time.csdl_due_at

    with session_scope(db_engine) as s:
        digest = build_digest(SweepContext(session=s, programme=programme, now=now), district_id=world.district_id)
    assert "Trường Tiểu học Phú Hòa 1</b>" in digest or "Trường Tiểu học Phú Hòa 1" in digest
    assert "Trường Tiểu học Phú Hòa 1: 1 bàn giao đã cập nhật CSDL ngành nhưng sau hạn" in digest
    assert "Trường THCS Chu Văn An: 1 bàn giao quá hạn cập nhật CSDL ngành" in digest

    out = tmp_path / "x.xlsx"
    with session_scope(db_engine) as s:
        export_workbook(s, scope=Scope(district_id=world.district_id), out=out, programme=programme, now=now)
    wb = openpyxl.load_workbook(out)
    rows = [[c.value for c in r] for r in wb["Tổng hợp"].iter_rows()]
    head = rows[0]
    school_a = dict(zip(head, rows[2]))
    assert school_a["Trễ CSDL: chưa cập nhật"] == 0 and school_a["Trễ CSDL: đã cập nhật sau hạn"] == 1
    handover_rows = [[c.value for c in r] for r in wb["Bàn giao"].iter_rows()]
    by_code = {r[0]: dict(zip(handover_rows[0], r)) for r in handover_rows[1:]}
    assert by_code[f"BG{seeded.handovers['late']:06d}"]["Trễ hạn CSDL"] == "Trễ, đã cập nhật sau hạn"
    assert by_code[f"BG{seeded.handovers['b']:06d}"]["Trễ hạn CSDL"] == "Trễ, chưa cập nhật"
    assert by_code[f"BG{seeded.handovers['confirmed']:06d}"]["Trễ hạn CSDL"] is None


def test_late_confirmed_respects_the_grace_hours(db_engine, world, clock, programme) -> None:
    seeded = seed_reports(db_engine, world, now=clock.now(), programme=programme)
    _confirm_late(db_engine, seeded.handovers["late"], days_after_due=1)  # 24 h after the due time
    for grace, expected in ((0, 1), (23, 1), (24, 1), (25, 0), (48, 0)):
        graced = programme.model_copy(
            update={"deadlines": programme.deadlines.model_copy(update={"handover_update_grace_hours": grace})}
        )
        with session_scope(db_engine) as s:
            scope = Scope(district_id=world.district_id, school_id=world.school_a)
            now = datetime(2021, 11, 25, tzinfo=UTC)
            got = build_summary(s, scope=scope, programme=graced, now=now).totals.late_csdl_confirmed
            assert got == expected, grace
            ids = s.execute(select(Handover.id).where(Handover.school_id == world.school_a)).scalars().all()
            assert seeded.handovers["late"] in ids
