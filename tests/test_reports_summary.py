"""/tonghop figures: aggregate counts per school, the asker's scope, and a text that fits a phone."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from reports.summary import MAX_TEXT, SchoolSummary, Summary, build_summary, format_summary, short_school_name
from storage.db import session_scope
from storage.models import Student
from storage.scope import Scope
from tests.test_reports_data import OUTSIDER, seed_reports

UTC = UTC


@pytest.fixture
def seeded(db_engine, world, clock, programme):
    return seed_reports(db_engine, world, now=clock.now(), programme=programme)


def test_district_summary_counts_school_by_school(db_engine, world, seeded, clock, programme) -> None:
    with session_scope(db_engine) as s:
        summary = build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
    assert summary.title == "Thành phố Thủ Dầu Một"
    assert [x.school_id for x in summary.schools] == [world.school_b, world.school_a]  # by name: THCS < Tiểu học
    b, a = summary.schools
    # A: 7 rows; rejected and withdrawn do not count; the withdrawal request still counts as approved.
    assert (a.registered, a.approved, a.pending) == (5, 4, 1)
    assert a.students_by_category == {"poor": 1, "near_poor": 1, "covid_orphan": 1, "other_hardship": 1}
    assert a.students_by_need == {"device": 2, "internet": 1, "both": 1}
    assert (a.received_programme, a.received_other, a.handed_over, a.waiting) == (5, 3, 3, 5)
    # 15/11 handover due end of 16/11: late at 17/11 08:00; 16/11 is not due yet; 14/11 was confirmed.
    assert a.late_csdl == 1
    assert a.open_flags == 1  # the resolved flag is not counted
    assert a.principal_name == "Nguyễn Thị Lan" and a.principal_phone == world.phones["principal_a"]
    assert a.needs_report_submitted_at is None
    assert (b.registered, b.approved, b.pending, b.received, b.handed_over, b.late_csdl) == (2, 1, 1, 2, 1, 1)
    assert b.needs_report_submitted_at == datetime(2021, 11, 16, 3, 0, tzinfo=UTC)
    t = summary.totals
    assert (t.registered, t.approved, t.pending, t.received, t.handed_over, t.waiting, t.late_csdl, t.open_flags) == (
        7,
        5,
        2,
        10,
        4,
        6,
        2,
        1,
    )
    assert t.students_by_need == {"device": 2, "internet": 1, "both": 2}
    assert summary.reports_submitted == 1


def test_principal_scope_sees_only_their_school(db_engine, world, seeded, clock, programme) -> None:
    from storage.models import Staff

    with session_scope(db_engine) as s:
        scope = Scope.for_staff(s.get(Staff, world.principal_a))
        summary = build_summary(s, scope=scope, programme=programme, now=clock.now())
    assert [x.school_id for x in summary.schools] == [world.school_a]
    assert summary.title == "Trường Tiểu học Phú Hòa 1"
    assert summary.totals.received == 8 and summary.totals.registered == 5  # nothing of school B


def test_officer_scope_excludes_other_districts(db_engine, world, seeded, clock, programme) -> None:
    with session_scope(db_engine) as s:
        tdm = build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
        other = build_summary(s, scope=Scope(district_id=world.other_district_id), programme=programme, now=clock.now())
    assert world.school_other not in {x.school_id for x in tdm.schools}
    assert [x.school_id for x in other.schools] == [world.school_other]
    o = other.schools[0]
    assert (o.approved, o.received_other, o.handed_over, o.open_flags) == (1, 4, 1, 1)
    assert OUTSIDER not in format_summary(tdm)


def test_summary_is_aggregate_sql_not_per_row(db_engine, world, seeded, clock, programme) -> None:
    """The number of queries does not grow with students: four aggregates plus the school, principal and district rows."""
    with session_scope(db_engine) as s:
        build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
        s.add_all(
            [
                Student(
                    school_id=world.school_a,
                    code=f"0792159{i:05d}",
                    full_name=f"Học sinh {i}",
                    birth_date=datetime(2012, 1, 1).date(),
                    gender="male",
                    class_name="1A",
                    category="poor",
                    need="device",
                    status="approved",
                    registered_by=world.teacher_a,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
                for i in range(50)
            ]
        )
        s.flush()
        statements: list[str] = []
        listener = lambda *a: statements.append(a[2])
        event.listen(db_engine, "before_cursor_execute", listener)
        try:
            summary = build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
        finally:
            event.remove(db_engine, "before_cursor_execute", listener)
    assert summary.totals.approved == 55
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) <= 8
    assert sum("GROUP BY" in q.upper() for q in statements) == 4  # students, batches, handovers, flags


def test_late_counts_the_grace_hours(db_engine, world, seeded, clock, programme) -> None:
    graced = programme.model_copy(
        update={"deadlines": programme.deadlines.model_copy(update={"handover_update_grace_hours": 48})}
    )
    with session_scope(db_engine) as s:
        scope = Scope(district_id=world.district_id, school_id=world.school_a)
        assert build_summary(s, scope=scope, programme=graced, now=clock.now()).totals.late_csdl == 0
        later = clock.now() + timedelta(days=2)
        assert build_summary(s, scope=scope, programme=graced, now=later).totals.late_csdl == 1


def test_format_district_and_school(db_engine, world, seeded, clock, programme) -> None:
    with session_scope(db_engine) as s:
        district = build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
        school = build_summary(
            s,
            scope=Scope(district_id=world.district_id, school_id=world.school_a),
            programme=programme,
            now=clock.now(),
        )
    text = format_summary(district)
    assert "Số liệu lúc 08:00 17/11/2021" in text
    assert "5 đã duyệt, 2 chờ duyệt" in text
    assert "Hộ nghèo 1, Hộ cận nghèo 2, Cha hoặc mẹ mất do COVID-19 1, Khó khăn khác 1" in text
    assert "Máy tính 2, Sóng internet 1, Cả hai 2" in text
    assert "10 (chương trình 7, nhà tài trợ khác 3)" in text
    assert "Trễ cập nhật CSDL ngành: 2" in text and "1/2 trường đã chốt" in text
    assert "• Tiểu học Phú Hòa 1: 4 · 8 · 3 · 5 ⚠️CSDL 1 🚩1" in text
    assert "• THCS Chu Văn An: 1 · 2 · 1 · 1 ⚠️CSDL 1" in text
    assert set(re.findall(r"</?(\w+)>", text)) <= {"b", "i"}
    one = format_summary(school)
    assert "Từng trường" not in one and "chưa chốt</b> (hạn hết ngày 20/11/2021)" in one
    en = format_summary(school, lang="en")
    assert "Students in need" in en and "not submitted" in en
    late = format_summary(replace(school, generated_at=datetime(2021, 11, 21, 1, 0, tzinfo=UTC)))
    assert "CHƯA CHỐT, đã quá hạn 20/11/2021" in late


def _many(n: int, *, now: datetime, programme) -> Summary:
    schools = []
    for i in range(n):
        # long enough to be cut at 40 characters, with markup characters that must be escaped
        name = f"Trường Tiểu học Số {i:03d} <Bình> & " + "Đ" * 40
        s = SchoolSummary(
            school_id=i + 1,
            code=f"S{i}",
            name=name,
            registered=100 + i,
            approved=90 + i,
            received_programme=50,
            handed_over=40,
            waiting=10,
            late_csdl=3 if i % 7 == 0 else 0,
            open_flags=1 if i % 11 == 0 else 0,
        )
        schools.append(s)
    return Summary(
        scope=Scope(district_id=1),
        title="Quận <Thử>",
        generated_at=now,
        schools=schools,
        totals=SchoolSummary(None, "", "Quận"),
        needs_report_due=programme.needs_report_due,
        category_labels={c.code: (c.label_vi, c.label_en) for c in programme.categories},
    )


@pytest.mark.parametrize("n", [30, 60, 200])
def test_long_district_fits_one_message_and_keeps_the_late_schools(n, clock, programme) -> None:
    summary = _many(n, now=clock.now(), programme=programme)
    text = format_summary(summary)
    assert len(text) < MAX_TEXT <= 4000
    assert "&lt;Bình&gt; &amp;" in text and "<Bình>" not in text and "Quận &lt;Thử&gt;" in text
    lines = [line for line in text.splitlines() if line.startswith("• Tiểu học Số")]
    if n == 30:
        assert len(lines) == 30 and "trường khác" not in text
        return
    # Summarised tail: schools that need attention keep their lines first (late before only-flagged before
    # quiet), the rest are counted in one line.
    assert f"• … và {n - len(lines)} trường khác" in text and "/xuatfile" in text
    shown = {
        s.school_id
        for s in summary.schools
        if any(line.startswith(f"• Tiểu học Số {s.school_id - 1:03d} ") for line in lines)
    }
    rank = {s.school_id: 2 if s.late_csdl else 1 if s.open_flags else 0 for s in summary.schools}
    hidden = set(rank) - shown
    assert min(rank[i] for i in shown) >= max(rank[i] for i in hidden)
    if n == 60:
        assert all(rank[i] == 0 for i in hidden)  # 60 schools: every late or flagged school is listed


def test_empty_scope_texts(clock, programme) -> None:
    empty = _many(0, now=clock.now(), programme=programme)
    assert "Chưa có trường nào" in format_summary(empty)
    quiet = _many(3, now=clock.now(), programme=programme)
    for s in quiet.schools:
        s.registered = s.approved = s.received_programme = s.handed_over = 0
    assert "Chưa có dữ liệu." in format_summary(quiet)


def test_short_school_name() -> None:
    assert short_school_name("Trường Tiểu học Phú Hòa 1") == "Tiểu học Phú Hòa 1"
    assert short_school_name("Trường THCS Chu Văn An") == "THCS Chu Văn An"
    assert len(short_school_name("Trường " + "A" * 100)) == 40


def test_the_pupils_pass_is_answered_by_the_covering_index(db_engine, world, seeded, clock, programme) -> None:
    """A province's overview reads 200,000 pupils: the GROUP BY must be answered from ix_student_summary alone
    (bench/bench_web.py: 250 -> ~100 ms). SQLite after the daily statistics refresh picks it by itself;
    PostgreSQL picks it by cost on large tables, so there the test only checks the index covers the query."""
    from sqlalchemy import text

    from storage.db import refresh_statistics

    with session_scope(db_engine) as s:
        s.add_all(
            [
                Student(
                    school_id=(world.school_a, world.school_b)[i % 2],
                    code=f"0792170{i:05d}",
                    full_name=f"Học sinh {i}",
                    birth_date=datetime(2012, 1, 1).date(),
                    gender="male",
                    class_name="1A",
                    category=("poor", "near_poor")[i % 2],
                    need="device",
                    status=("approved", "pending", "rejected")[i % 3],
                    registered_by=world.teacher_a,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
                for i in range(3000)
            ]
        )
    refresh_statistics(db_engine)
    seen: list[tuple[str, object]] = []

    def listener(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM student" in statement and "GROUP BY" in statement:
            seen.append((statement, parameters))

    event.listen(db_engine, "before_cursor_execute", listener)
    try:
        with session_scope(db_engine) as s:
            build_summary(s, scope=Scope(district_id=world.district_id), programme=programme, now=clock.now())
    finally:
        event.remove(db_engine, "before_cursor_execute", listener)
    ((statement, parameters),) = seen
    with db_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dbapi = conn.connection.dbapi_connection
        cur = dbapi.cursor()
        if db_engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = " ".join(str(row[-1]) for row in cur.fetchall())
            assert "COVERING INDEX ix_student_summary" in plan, plan
        else:
            conn.execute(text("VACUUM ANALYZE student"))  # autovacuum's job on a live database
            # On 3,000 rows the planner rightly prefers the (school, status) index and the heap; with that index
            # out of the way (DDL is transactional: rolled back) the query must still not need the table.
            conn.execute(text("BEGIN"))
            conn.execute(text("DROP INDEX ix_student_school_status"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
            cur.execute("EXPLAIN " + statement, parameters)
            plan = " ".join(row[0] for row in cur.fetchall())
            conn.execute(text("ROLLBACK"))
            assert "Index Only Scan using ix_student_summary" in plan, plan
        cur.close()
