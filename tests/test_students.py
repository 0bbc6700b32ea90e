"""storage/students.py on SQLite and PostgreSQL: registration rules, review, withdrawal, audited corrections,
search for handovers, the needs report, and the school boundary."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

from conversations.refusals import refusal
from core.vocabulary import ReviewStatus
from storage import audit, students
from storage.db import session_scope
from storage.models import AuditEvent, Batch, Handover, School, Staff, Student


def _staff(s, staff_id: int) -> Staff:
    return s.get(Staff, staff_id)


def _register(s, actor, now, code="0123456789", name="Nguyễn Văn An", birth=date(2012, 9, 5), **kw) -> Student:
    fields = dict(
        full_name=name, birth_date=birth, class_name="4A", code=code, gender="male", category="poor", need="device"
    )
    fields.update(kw)
    return students.register_student(s, actor=actor, now=now, **fields)


def test_register_and_duplicate_code_anywhere(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        st = _register(s, _staff(s, world.teacher_a), now)
        assert st.status == ReviewStatus.PENDING and not st.late and st.registered_by == world.teacher_a
    with session_scope(db_engine) as s, pytest.raises(students.DuplicateCode) as exc:
        _register(s, _staff(s, world.teacher_b), now + timedelta(days=1), name="Lê Văn Bình", birth=date(2008, 1, 1))
    said = refusal(exc.value)
    assert "Trường Tiểu học Phú Hòa 1" in said and "17/11/2021" in said
    with session_scope(db_engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "create")).all()
        assert len(events) == 1 and events[0].after["code"] == "0123456789"


def test_a_code_registered_meanwhile_is_refused_clearly(db_engine, world, clock, monkeypatch) -> None:
    """Between a registration's checks and its INSERT a colleague saves the same code: the refusal names them
    (ON CONFLICT DO NOTHING, no savepoint) and the transaction stays usable."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: another registration cannot land between the checks and the INSERT")
    now = clock.now()
    real = students._insert_new

    def colleague_first(session, student):
        monkeypatch.setattr(students, "_insert_new", real)  # the colleague's own save goes straight through
        with session_scope(db_engine) as other:
            _register(other, _staff(other, world.teacher_b), now, name="Lê Văn Bình", birth=date(2008, 1, 1))
        return real(session, student)

    monkeypatch.setattr(students, "_insert_new", colleague_first)
    with session_scope(db_engine) as s:
        with pytest.raises(students.DuplicateCode) as exc:
            _register(s, _staff(s, world.teacher_a), now)
        assert "Trường" in refusal(exc.value)
        assert len(s.exec(select(Student)).all()) == 1  # the colleague's; this transaction still answers


def test_same_name_and_birth_needs_confirmation(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        _register(s, _staff(s, world.teacher_a), now)
    with session_scope(db_engine) as s, pytest.raises(students.SameNameAndBirth):
        _register(s, _staff(s, world.teacher_a2), now, code="0123456780")
    with session_scope(db_engine) as s:
        _register(s, _staff(s, world.teacher_a2), now, code="0123456780", confirm_same_name=True)
        # Another school may have a pupil with the same name and birth date without any question.
        _register(s, _staff(s, world.teacher_b), now, code="0123456781", birth=date(2008, 9, 5))


def test_only_school_staff_register(db_engine, world, clock) -> None:
    with session_scope(db_engine) as s, pytest.raises(students.NotAllowed):
        _register(s, _staff(s, world.officer), clock.now())


def test_review_is_the_principals_of_the_same_school(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        sid = _register(s, _staff(s, world.teacher_a), now).id
    with session_scope(db_engine) as s:
        for who in (world.teacher_a, world.principal_b, world.officer):
            with pytest.raises(students.NotAllowed):
                students.approve(s, actor=_staff(s, who), student_id=sid, now=now)
        assert [x.id for x in students.list_pending(s, school_id=world.school_a)] == [sid]
        assert students.list_pending(s, school_id=world.school_b) == []
        st = students.approve(s, actor=_staff(s, world.principal_a), student_id=sid, now=now)
        assert st.status == ReviewStatus.APPROVED and st.reviewed_by == world.principal_a
        with pytest.raises(students.WrongState):
            students.reject(s, actor=_staff(s, world.principal_a), student_id=sid, reason="x", now=now)


def test_reject_needs_a_reason(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        sid = _register(s, _staff(s, world.teacher_a), now).id
        with pytest.raises(students.StudentError):
            students.reject(s, actor=_staff(s, world.principal_a), student_id=sid, reason="  ", now=now)
        st = students.reject(s, actor=_staff(s, world.principal_a), student_id=sid, reason="Không thuộc diện", now=now)
        assert st.status == ReviewStatus.REJECTED and st.reject_reason == "Không thuộc diện"


def test_withdrawal_rules(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        teacher, principal = _staff(s, world.teacher_a), _staff(s, world.principal_a)
        pending = _register(s, teacher, now, code="1000000001", name="Lê Văn Một").id
        approved = _register(s, teacher, now, code="1000000002", name="Lê Văn Hai").id
        students.approve(s, actor=principal, student_id=approved, now=now)
        with pytest.raises(students.NotAllowed):  # another teacher's entry
            students.withdraw(s, actor=_staff(s, world.teacher_a2), student_id=pending, reason=None, now=now)
        with pytest.raises(students.NotAllowed):  # another school
            students.withdraw(s, actor=_staff(s, world.principal_b), student_id=pending, reason=None, now=now)
        assert (
            students.withdraw(s, actor=teacher, student_id=pending, reason="nhầm", now=now).status
            == ReviewStatus.WITHDRAWN
        )
        st = students.withdraw(s, actor=teacher, student_id=approved, reason="chuyển trường", now=now)
        assert st.status == ReviewStatus.WITHDRAWING
        assert students.needs_report_counts(s, school_id=world.school_a)["total"] == 1  # still counted
        assert [x.id for x in students.list_withdrawal_requests(s, school_id=world.school_a)] == [approved]
        st = students.decide_withdrawal(s, actor=principal, student_id=approved, accept=False, now=now)
        assert st.status == ReviewStatus.APPROVED
        assert (
            students.withdraw(s, actor=principal, student_id=approved, reason=None, now=now).status
            == ReviewStatus.WITHDRAWN
        )


def test_corrections_are_audited_and_resubmit_a_rejected_entry(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        teacher = _staff(s, world.teacher_a)
        sid = _register(s, teacher, now).id
        other = _register(s, teacher, now, code="1111111111", name="Lê Thị Ba").id
        students.reject(s, actor=_staff(s, world.principal_a), student_id=sid, reason="Sai lớp", now=now)
    later = now + timedelta(hours=2)
    with session_scope(db_engine) as s:
        teacher = _staff(s, world.teacher_a)
        st = students.update_student_field(s, actor=teacher, student_id=sid, field="class_name", value="4B", now=later)
        assert st.class_name == "4B" and st.status == ReviewStatus.PENDING and st.reject_reason is None
        with pytest.raises(students.DuplicateCode):
            students.update_student_field(s, actor=teacher, student_id=sid, field="code", value="1111111111", now=later)
        with pytest.raises(students.NotAllowed):
            students.update_student_field(
                s, actor=_staff(s, world.teacher_a2), student_id=sid, field="note", value="x", now=later
            )
        with pytest.raises(students.NotAllowed):
            students.update_student_field(
                s, actor=_staff(s, world.principal_b), student_id=sid, field="note", value="x", now=later
            )
        with pytest.raises(students.NotAllowed):
            students.update_student_field(s, actor=teacher, student_id=sid, field="status", value="approved", now=later)
        assert other
    with session_scope(db_engine) as s:
        [ev] = [e for e in audit.history(s, entity="student", entity_id=sid) if e.action == "update"]
        assert ev.actor_id == world.teacher_a and ev.at == later
        assert ev.before == {"class_name": "4A", "status": "rejected"}
        assert ev.after == {"class_name": "4B", "status": "pending"}


def test_get_student_hides_other_schools(db_engine, world, clock) -> None:
    with session_scope(db_engine) as s:
        sid = _register(s, _staff(s, world.teacher_a), clock.now()).id
    with session_scope(db_engine) as s:
        assert students.get_student(s, actor=_staff(s, world.officer), student_id=sid).id == sid
        for who in (world.principal_b, world.teacher_b, world.other_officer, world.principal_other):
            with pytest.raises(students.NotAllowed):
                students.get_student(s, actor=_staff(s, who), student_id=sid)


def test_search_unserved_students(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        teacher, principal = _staff(s, world.teacher_a), _staff(s, world.principal_a)
        ids = {}
        for code, name in (
            ("2000000001", "Nguyễn Văn An"),
            ("2000000002", "Trần Thị Ánh"),
            ("2000000003", "Lê Văn Anh"),
            ("2000000004", "Phạm Văn Bình"),
        ):
            ids[name] = _register(s, teacher, now, code=code, name=name).id
            students.approve(s, actor=principal, student_id=ids[name], now=now)
        _register(s, teacher, now, code="2000000005", name="Võ Văn An")  # pending: not offered
        batch = Batch(
            school_id=world.school_a,
            source="programme",
            received_on=date(2021, 11, 10),
            quantity=5,
            device_type="laptop",
            brand_model="X",
            condition="mới",
            recorded_by=world.principal_a,
            created_at=now,
        )
        s.add(batch)
        s.flush()
        s.add(
            Handover(
                student_id=ids["Lê Văn Anh"],
                batch_id=batch.id,
                school_id=world.school_a,
                handed_over_on=date(2021, 11, 16),
                recorded_by=world.teacher_a,
                csdl_due_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    with session_scope(db_engine) as s:
        names = lambda q: [x.full_name for x in students.search_unserved_students(s, school_id=world.school_a, query=q)]
        assert names("an") == ["Nguyễn Văn An", "Trần Thị Ánh"]  # accents optional; served Lê Văn Anh left out
        assert names("nguyen an") == ["Nguyễn Văn An"]
        assert names("2000000004") == ["Phạm Văn Bình"]
        assert names("") == ["Nguyễn Văn An", "Phạm Văn Bình", "Trần Thị Ánh"]
        assert students.search_unserved_students(s, school_id=world.school_b, query="an") == []


def test_needs_report_counts_and_submission(db_engine, world, clock) -> None:
    now = clock.now()
    with session_scope(db_engine) as s:
        teacher, principal = _staff(s, world.teacher_a), _staff(s, world.principal_a)
        a = _register(s, teacher, now, code="3000000001", name="Nguyễn Văn An", category="poor", need="both")
        b = _register(s, teacher, now, code="3000000002", name="Trần Văn Bình", category="near_poor", need="device")
        _register(s, teacher, now, code="3000000003", name="Lê Văn Cường")
        for st in (a, b):
            students.approve(s, actor=principal, student_id=st.id, now=now)
        counts = students.needs_report_counts(s, school_id=world.school_a)
        assert counts == {
            "total": 2,
            "by_category": {"poor": 1, "near_poor": 1},
            "by_need": {"both": 1, "device": 1},
            "pending": 1,
        }
        with pytest.raises(students.NotAllowed):
            students.submit_needs_report(s, actor=teacher, now=now)
        school = students.submit_needs_report(s, actor=principal, now=now)
        assert school.needs_report_submitted_at == now and school.needs_report_submitted_by == world.principal_a
        with pytest.raises(students.AlreadySubmitted):
            students.submit_needs_report(s, actor=principal, now=now)
        late = _register(s, teacher, now + timedelta(days=1), code="3000000004", name="Đỗ Văn Dũng")
        assert late.late
        other_school = _register(
            s, _staff(s, world.teacher_b), now, code="3000000005", name="Đỗ Văn Em", birth=date(2008, 1, 1)
        )
        assert not other_school.late
        assert s.get(School, world.school_b).needs_report_submitted_at is None


@pytest.mark.parametrize("query", ["%", "_", "\\", "%%", "*", "_n", "  %  "])
def test_search_symbols_are_not_wildcards(db_engine, world, clock, query) -> None:
    """Searching "%" once matched every student (issue 13): symbols match nothing in a name or a code."""
    from core.vocabulary import ReviewStatus
    from storage import handovers
    from storage.models import Student

    with session_scope(db_engine) as s:
        for n, name in enumerate(["Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường"]):
            s.add(
                Student(
                    school_id=world.school_a,
                    code=f"07921500000{n}",
                    full_name=name,
                    birth_date=date(2012, 1, 1),
                    gender="male",
                    class_name="4A",
                    category="poor",
                    need="device",
                    status=ReviewStatus.APPROVED,
                    registered_by=world.teacher_a,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
    with session_scope(db_engine) as s:
        assert students.search_unserved_students(s, school_id=world.school_a, query=query) == []
        assert handovers.students_to_serve(s, school_id=world.school_a, query=query) == []
        # the same searches with letters still work
        assert [x.full_name for x in handovers.students_to_serve(s, school_id=world.school_a, query="an")] == [
            "Nguyễn Văn An"
        ]
        assert len(students.search_unserved_students(s, school_id=world.school_a, query="079")) == 3
