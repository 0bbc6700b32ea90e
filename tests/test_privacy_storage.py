"""Children's data in storage, on SQLite and PostgreSQL: the append-only access log (database triggers), the
retention purge (totals equal, files gone, a second run removes nothing, --dry-run changes nothing) and the
erasure of one pupil (every trace gone, nothing of any other pupil)."""

from __future__ import annotations

import json
import os
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, SQLModel

from core.clock import LOCAL_TZ
from reports.export import write_export
from reports.summary import build_summary
from storage import access_log, erasure, students
from storage.db import session_scope
from storage.models import (
    AccessLog,
    AuditEvent,
    Conversation,
    Flag,
    Handover,
    HandoverPhoto,
    Notification,
    Photo,
    Staff,
    Student,
)
from storage.purge import plan_purge, purge, remove_old_exports
from storage.scope import Scope
from tests.test_reports_data import seed_reports

REFUSED = (DBAPIError, IntegrityError)


def _local(day: int, hour: int = 0) -> datetime:
    return datetime.combine(datetime(2021, 11, day).date(), time(hour), tzinfo=LOCAL_TZ)


# --- the access log -------------------------------------------------------------------------------------------


def _log_one(engine, world, clock) -> int:
    with session_scope(engine) as s:
        officer = s.get(Staff, world.officer)
        row = access_log.record_access(
            s,
            actor=officer,
            role=officer.role,
            what=access_log.EXPORT,
            scope=Scope(district_id=world.district_id),
            pupils=9,
            now=clock.now(),
        )
        return row.id


def test_access_row_records_who_what_scope_and_count(db_engine, world, clock) -> None:
    _log_one(db_engine, world, clock)
    with Session(db_engine) as s:
        [row] = access_log.entries(s)
    assert (row.actor, row.role, row.what, row.scope, row.pupils) == (
        "Lê Minh Tiến",
        "district_officer",
        "export",
        "district:TDM",
        9,
    )
    assert row.district_id == world.district_id and row.school_id is None and row.at == clock.now()


@pytest.mark.parametrize(
    "sql",
    ["UPDATE access_log SET pupils = 0", "UPDATE access_log SET actor = 'x' WHERE id > 0", "DELETE FROM access_log"],
)
def test_the_database_refuses_to_update_or_delete_log_rows(db_engine, world, clock, sql) -> None:
    _log_one(db_engine, world, clock)
    with pytest.raises(REFUSED, match="append-only"), db_engine.begin() as conn:
        conn.execute(text(sql))
    with Session(db_engine) as s:
        assert [r.pupils for r in access_log.entries(s)] == [9]


def test_only_the_purge_deletes_and_the_gate_closes_behind_it(db_engine, world, clock) -> None:
    _log_one(db_engine, world, clock)
    with session_scope(db_engine) as s:
        assert access_log.purge_before(s, before=clock.now(), dry_run=False) == 0  # nothing older
        assert access_log.purge_before(s, before=clock.now() + timedelta(seconds=1), dry_run=True) == 1
        assert access_log.purge_before(s, before=clock.now() + timedelta(seconds=1)) == 1
        # Same transaction, after the purge: deletes are refused again.
        access_log.record_access(
            s, actor="cli:test", role="operator", what="backup", scope="all", pupils=1, now=clock.now()
        )
        s.flush()
        with pytest.raises(REFUSED, match="append-only"), s.begin_nested():
            s.execute(text("DELETE FROM access_log"))
    with Session(db_engine) as s:
        assert [r.what for r in access_log.entries(s)] == ["backup"]


def test_exports_by_person_for_the_digest(db_engine, world, clock) -> None:
    with session_scope(db_engine) as s:
        officer, principal = s.get(Staff, world.officer), s.get(Staff, world.principal_a)
        other = s.get(Staff, world.other_officer)
        for who, what, days_ago in (
            (officer, access_log.EXPORT, 1),
            (officer, access_log.EXPORT_PROTECTED, 2),
            (principal, access_log.EXPORT, 3),
            (officer, access_log.SUMMARY, 1),  # not an export
            (officer, access_log.EXPORT, 9),  # older than the week
            (other, access_log.EXPORT, 1),  # another district
        ):
            access_log.record_access(
                s,
                actor=who,
                role=who.role,
                what=what,
                scope=Scope.for_staff(who),
                pupils=1,
                now=clock.now() - timedelta(days=days_ago),
            )
        counts = access_log.exports_by_person(
            s, district_id=world.district_id, since=clock.now() - timedelta(days=7), until=clock.now()
        )
    assert [(c.actor, c.count) for c in counts] == [("Lê Minh Tiến", 2), ("Nguyễn Thị Lan", 1)]


# --- the retention purge ------------------------------------------------------------------------------------------


def _every_total(engine, world, programme, now, tmp_path) -> dict:
    """Every report's totals: the summary of each scope, each school's needs report, the workbook's rows."""
    out = {}
    with Session(engine) as s:
        scopes = [Scope(district_id=world.district_id), Scope(district_id=world.other_district_id)]
        scopes += [Scope(district_id=world.district_id, school_id=x) for x in (world.school_a, world.school_b)]
        for i, scope in enumerate(scopes):
            summ = build_summary(s, scope=scope, programme=programme, now=now)
            t = summ.totals
            out[f"summary{i}"] = {k: v for k, v in vars(t).items() if k not in ("school_id", "name", "code")}
            r = write_export(s, scope=scope, out=tmp_path / f"totals{i}.xlsx", programme=programme, now=now)
            out[f"export{i}"] = (r.schools, r.students, r.batches, r.handovers)
        for school in (world.school_a, world.school_b, world.school_other):
            out[f"needs{school}"] = students.needs_report_counts(s, school_id=school)
    return out


def _dump(engine) -> dict:
    with Session(engine) as s:
        return {
            t.name: sorted(json.dumps(dict(r._mapping), default=str, ensure_ascii=False) for r in s.execute(t.select()))
            for t in SQLModel.metadata.sorted_tables
        }


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def seeded(db_engine, world, clock, programme, tmp_path):
    media = tmp_path / "media"
    out = seed_reports(db_engine, world, now=clock.now(), programme=programme, media_dir=media)
    minutes = media / "minutes" / f"BG{out.handovers['late']:06d}.pdf"
    minutes.parent.mkdir(parents=True)
    minutes.write_bytes(b"%PDF-1.4 minutes")
    return out


def test_purge_dry_run_changes_nothing(db_engine, world, seeded, clock, tmp_path) -> None:
    media = tmp_path / "media"
    before_rows, before_files = _dump(db_engine), _files(media)
    with session_scope(db_engine) as s:
        report = purge(s, before=_local(18), now=clock.now(), media_dir=media, dry_run=True)
    p = report.plan
    assert len(p.students) == 10 and p.birth_dates == 10 and p.guardian_phones == 9 and p.hardship_reasons == 1
    assert p.photo_links == 4 and len(p.photo_ids) == 3 and report.files_removed == 0
    assert any(f.startswith("minutes/") for f in p.files)
    assert _dump(db_engine) == before_rows and _files(media) == before_files


def test_purge_keeps_every_total_removes_the_data_and_files_and_a_second_run_removes_nothing(
    db_engine, world, seeded, clock, programme, tmp_path
) -> None:
    media = tmp_path / "media"
    now = clock.now() + timedelta(days=400)
    totals = _every_total(db_engine, world, programme, clock.now(), tmp_path)
    with session_scope(db_engine) as s:
        access_log.record_access(
            s, actor="cli:t", role="operator", what="backup", scope="all", pupils=1, now=clock.now()
        )
        report = purge(s, before=_local(18), now=now, media_dir=media, dry_run=False)
    assert report.files_removed == 4  # three photos (no thumbnails on disk in this seed) and one minutes file
    assert not any(f.startswith(("photos/", "minutes/")) for f in _files(media))
    assert _every_total(db_engine, world, programme, clock.now(), tmp_path) == totals
    with Session(db_engine) as s:
        for st in s.scalars(select(Student)):
            assert (st.birth_date, st.hardship_reason, st.guardian_name, st.guardian_phone) == (None,) * 4
            assert st.purged_at == now and st.full_name  # names and counts stay
        assert s.scalar(select(Photo.id)) is None and s.scalar(select(HandoverPhoto.id)) is None
        assert len(list(s.scalars(select(Handover.id)))) == 5
        assert [r.what for r in access_log.entries(s)] == ["purge"]  # the old row went, the purge is recorded
    with session_scope(db_engine) as s:
        again = plan_purge(s, before=_local(18), media_dir=media)
        assert again.empty
        second = purge(s, before=_local(18), now=now, media_dir=media, dry_run=False)
    assert second.files_removed == 0 and second.plan.empty


def test_purge_spares_what_is_newer_and_scrubs_old_audit_snapshots(
    db_engine, world, seeded, clock, programme, tmp_path
) -> None:
    media = tmp_path / "media"
    with session_scope(db_engine) as s:
        old = s.get(Student, seeded.a_students[0])  # registered three days before the others
        s.add(
            AuditEvent(
                at=clock.now(),
                actor_id=world.teacher_a,
                action="create",
                entity="student",
                entity_id=old.id,
                after={"full_name": old.full_name, "birth_date": "2012-03-09", "guardian_phone": old.guardian_phone},
            )
        )
    with session_scope(db_engine) as s:
        report = purge(s, before=_local(17), now=clock.now(), media_dir=media, dry_run=False)
    assert report.plan.students == [seeded.a_students[0]] and not report.plan.handovers
    with Session(db_engine) as s:
        assert s.get(Student, seeded.a_students[0]).guardian_phone is None
        assert s.get(Student, seeded.a_students[1]).guardian_phone == "+84912345678"
        [ev] = s.scalars(select(AuditEvent).where(AuditEvent.entity_id == seeded.a_students[0])).all()
        assert ev.after == {"full_name": "Nguyễn Thị Ánh", "birth_date": None, "guardian_phone": None}
    assert all(f.exists() for f in seeded.photo_files)


def test_old_export_files_are_removed(tmp_path, clock) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    old, new = exports / "a.xlsx", exports / "b.xlsx"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    now = clock.now().timestamp()
    os.utime(old, (now - 8 * 86400, now - 8 * 86400))
    os.utime(new, (now - 6 * 86400, now - 6 * 86400))
    assert remove_old_exports(tmp_path, older_than=clock.now() - timedelta(days=7)) == 1
    assert not old.exists() and new.exists()
    assert remove_old_exports(tmp_path / "none", older_than=clock.now()) == 0


# --- erasure ------------------------------------------------------------------------------------------------------

NAME, CODE = "Nguyễn Thị Ánh", "079215000001"


def _traces(engine, media: Path, needles: tuple[str, ...]) -> list[str]:
    """Every place (table:row, file) where one of ``needles`` is found: database rows as text (JSON decoded,
    so escaped Unicode counts), file names and file contents."""
    found = []
    for table, rows in _dump(engine).items():
        for row in rows:
            decoded = json.loads(row)
            blob = json.dumps(
                {k: (json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v) for k, v in decoded.items()},
                ensure_ascii=False,
            )
            found += [f"{table}:{row}" for n in needles if n in blob]
    for path in media.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"file:{path}" for n in needles if n in path.name or n.encode() in data]
    return found


def test_erasure_removes_every_trace_and_nothing_of_any_other_pupil(db_engine, world, seeded, clock, tmp_path) -> None:
    media = tmp_path / "media"
    sid = seeded.a_students[0]
    late = seeded.handovers["late"]
    with session_scope(db_engine) as s:
        s.add_all(
            [
                Notification(
                    key="k1",
                    rule="test",
                    subject="s",
                    stage="1",
                    recipient_id=world.principal_a,
                    text=f"🆕 Đăng ký mới chờ duyệt: em <b>{NAME}</b>",
                    next_attempt_at=clock.now(),
                    created_at=clock.now(),
                ),
                Notification(
                    key="k2",
                    rule="test",
                    subject="s",
                    stage="1",
                    recipient_id=world.principal_a,
                    text=f"em <b>{NAME} Hồng</b> mã 079215000011",
                    next_attempt_at=clock.now(),
                    created_at=clock.now(),
                ),
                AuditEvent(
                    at=clock.now(),
                    actor_id=world.teacher_a,
                    action="create",
                    entity="student",
                    entity_id=sid,
                    after={"full_name": NAME, "code": CODE},
                ),
                AuditEvent(
                    at=clock.now(),
                    actor_id=world.teacher_a,
                    action="create",
                    entity="handover",
                    entity_id=late,
                    after={"student": NAME},
                ),
                Conversation(
                    staff_id=world.teacher_a,
                    channel="telegram",
                    chat_id="1",
                    form="sua_dangky",
                    step="note",
                    data={"student_id": sid, "full_name": NAME},
                    started_at=clock.now(),
                    updated_at=clock.now(),
                ),
                Flag(
                    handover_id=seeded.handovers["fresh"],
                    school_id=world.school_a,
                    kind="photo_near_duplicate",
                    params={"id": late, "student": NAME, "day": "15/11/2021"},
                    related_handover_id=late,
                    created_at=clock.now(),
                ),
            ]
        )
    (media / "exports").mkdir()
    (media / "exports" / "abc.xlsx").write_text(f"{NAME} {CODE}")
    # the seeded fixture already wrote media/minutes/BG<late>.pdf, the handover's minutes
    others_before = {k: v for k, v in _dump(db_engine).items()}
    other_rows = [r for r in others_before["student"] if CODE not in r]
    assert _traces(db_engine, media, (NAME, CODE))

    with session_scope(db_engine) as s:
        principal = s.get(Staff, world.principal_a)
        student = erasure.find_student(s, actor=principal, code=CODE)
        report = erasure.erase(
            s, actor=principal, role=principal.role, student_id=student.id, now=clock.now(), media_dir=media
        )
    assert (report.handovers, report.photos, report.notifications, report.conversations) == (1, 1, 1, 1)

    # Another pupil whose name starts with hers keeps her notification (checked below).
    traces = [t for t in _traces(db_engine, media, (NAME, CODE)) if f"{NAME} Hồng" not in t]
    # The only mention left: the access log's erasure row (who, when, which code) — no name, no data.
    assert len(traces) == 1 and traces[0].startswith("access_log:") and CODE in traces[0]
    with Session(db_engine) as s:
        [row] = access_log.entries(s)
        assert (row.what, row.scope, row.actor, row.pupils) == ("erase", f"student:{CODE}", "Nguyễn Thị Lan", 1)
        # Nothing of any other pupil: their rows, the shared photo, the other notification, their flag.
        after = _dump(db_engine)
        assert sorted(r for r in after["student"]) == sorted(other_rows)
        assert s.get(Handover, seeded.handovers["confirmed"]) is not None
        shared = s.scalar(select(Photo).where(Photo.sha256 == "aa11" * 16))
        assert shared is not None and (media / shared.path).exists()
        [kept] = s.scalars(select(Notification)).all()
        assert "Hồng" in kept.text
        for other in (seeded.handovers["confirmed"], seeded.handovers["fresh"]):
            flag = s.scalar(select(Flag).where(Flag.handover_id == other))
            assert flag.related_handover_id is None and flag.params == {"text": erasure.ERASED_NOTE}
    assert not (media / "photos" / "bb" / "bb22.jpg").exists()  # her minutes photo


def test_erasure_scope(db_engine, world, seeded) -> None:
    with Session(db_engine) as s:
        for who, code, allowed in (
            (world.principal_a, CODE, True),
            (world.principal_b, CODE, False),
            (world.officer, CODE, True),
            (world.other_officer, CODE, False),
            (world.teacher_a, CODE, False),
            (world.officer, "000000000000", False),
        ):
            assert (erasure.find_student(s, actor=s.get(Staff, who), code=code) is not None) is allowed, (who, code)
        assert erasure.find_student(s, actor="cli:root", code=CODE) is not None


def test_no_application_code_path_updates_or_deletes_log_rows(
    db_engine, world, seeded, clock, programme, tmp_path
) -> None:
    """The SQL the application emits over every path that touches the log: only INSERTs into access_log (and
    the purge's DELETE)."""
    media = tmp_path / "media"
    statements: list[str] = []
    listener = lambda *a: statements.append(" ".join(a[2].split()).lower())
    event.listen(db_engine, "before_cursor_execute", listener)
    try:
        with session_scope(db_engine) as s:
            principal = s.get(Staff, world.principal_a)
            for what in (access_log.SUMMARY, access_log.EXPORT, access_log.EXPORT_CLI, access_log.BACKUP):
                access_log.record_access(
                    s,
                    actor=principal,
                    role=principal.role,
                    what=what,
                    scope=Scope.for_staff(principal),
                    pupils=1,
                    now=clock.now(),
                )
            student = erasure.find_student(s, actor=principal, code=CODE)
            erasure.erase(
                s, actor=principal, role=principal.role, student_id=student.id, now=clock.now(), media_dir=media
            )
        without_purge = list(statements)
        with session_scope(db_engine) as s:
            purge(s, before=_local(18), now=clock.now() + timedelta(days=1), media_dir=media, dry_run=False)
    finally:
        event.remove(db_engine, "before_cursor_execute", listener)
    touching = [
        q for q in without_purge if "access_log" in q and not q.startswith(("insert into access_log", "select"))
    ]
    assert touching == [] and sum(q.startswith("insert into access_log") for q in without_purge) == 5
    purge_sql = [
        q for q in statements[len(without_purge) :] if "access_log" in q and not q.startswith(("insert", "select"))
    ]
    assert any(q.startswith("delete from access_log") for q in purge_sql)
    assert not any(q.startswith("update access_log") for q in statements)
    with Session(db_engine) as s:
        assert s.scalar(select(AccessLog.id)) is not None


def test_mondays_district_digest_counts_the_weeks_exports_by_person(db_engine, world, programme) -> None:
    from scheduler.sweep import sweep
    from tests.factories import link, local

    link(db_engine, staff_id=world.officer, linked_at=local(2021, 11, 1))
    with session_scope(db_engine) as s:
        officer, principal = s.get(Staff, world.officer), s.get(Staff, world.principal_a)
        for who, at in (
            (officer, local(2021, 11, 19, 9)),
            (officer, local(2021, 11, 21, 9)),
            (principal, local(2021, 11, 20, 9)),
        ):
            access_log.record_access(
                s, actor=who, role=who.role, what=access_log.EXPORT, scope=Scope.for_staff(who), pupils=3, now=at
            )

    def digest_text(now) -> str:
        [c] = [
            c
            for c in sweep(db_engine, programme=programme, now=now).created
            if c.rule == "digest" and c.recipient.staff_id == world.officer
        ]
        return c.line

    monday = digest_text(local(2021, 11, 22, 7))  # 22/11/2021 was a Monday
    assert "Xuất tệp dữ liệu học sinh 7 ngày qua: Lê Minh Tiến 2, Nguyễn Thị Lan 1" in monday
    assert sum("Xuất tệp" in line for line in monday.splitlines()) == 1
    assert "Xuất tệp" not in digest_text(local(2021, 11, 23, 7))  # the other days: no export line


def test_the_migration_installs_the_same_guard(db_url, clock) -> None:
    from storage.db import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    with session_scope(engine) as s:
        access_log.record_access(
            s, actor="cli:t", role="operator", what="backup", scope="all", pupils=1, now=clock.now()
        )
    for sql in ("UPDATE access_log SET pupils = 2", "DELETE FROM access_log"):
        with pytest.raises(REFUSED, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    with session_scope(engine) as s:
        assert access_log.purge_before(s, before=clock.now() + timedelta(seconds=1)) == 1
    with Session(engine) as s:
        assert access_log.entries(s) == []
    engine.dispose()
