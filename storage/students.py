"""Students in need: registration, review, withdrawal, corrections, the needs report.

Every function takes the acting person (``actor``: a Staff row or the engine's ``Person``, anything with
``id``, ``role``, ``school_id``, ``district_id``) and refuses with ``NotAllowed`` what their role or school
does not allow, so the rule "nobody changes another school's data" holds whichever form calls it. Every
change writes an audit event in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import Integer, bindparam, cast, func, literal, null, union_all
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from core.vocabulary import REPORTED, HandoverStatus, ReviewStatus, Role
from storage import audit, batching
from storage.errors import NotAllowed, RecordError
from storage.models import Handover, School, Staff, Student, StudentImport
from storage.scope import Scope

# Statuses that count as "a student in need" in the needs report and may receive a computer.
# Fields a correction (/cuatoi) may change.
EDITABLE_FIELDS = (
    "full_name",
    "birth_date",
    "class_name",
    "code",
    "gender",
    "category",
    "hardship_reason",
    "need",
    "guardian_name",
    "guardian_phone",
    "note",
)


class Actor(Protocol):
    id: int
    role: str
    school_id: int | None
    district_id: int


class StudentError(RecordError):
    """A refusal about a pupil's record (``conversations/refusals.py`` words it)."""


class WrongState(StudentError):
    """The record is no longer in the state the step expects (someone else acted first)."""


class DuplicateCode(StudentError):
    def __init__(self, *, code: str, school_name: str, registered_on: date) -> None:
        super().__init__("duplicate_code", student_code=code, school=school_name, day=registered_on)
        self.student_code, self.school_name, self.registered_on = code, school_name, registered_on


class SameNameAndBirth(StudentError):
    """Same name and birth date already registered in this school: ask the person to confirm first."""

    def __init__(self, existing: Student) -> None:
        super().__init__(
            "same_name_and_birth", name=existing.full_name, birth=existing.birth_date, student_code=existing.code
        )
        self.existing = existing


class AlreadySubmitted(StudentError):
    """The school's needs report was locked before."""


def _snapshot(student: Student, fields: tuple[str, ...] = EDITABLE_FIELDS + ("status",)) -> dict[str, Any]:
    return {f: getattr(student, f) for f in fields}


def _check_school(actor: Actor, school_id: int) -> None:
    if actor.role == Role.DISTRICT_OFFICER or actor.school_id != school_id:
        raise NotAllowed("other_school_record")


def _local_day(at: datetime) -> date:
    from core.clock import LOCAL_TZ

    return at.astimezone(LOCAL_TZ).date()


def _consent_at(day: date | None) -> datetime | None:
    """A class list's consent column gives a day (the paper form's); stored as the start of that local day."""
    if day is None:
        return None
    from core.clock import LOCAL_TZ

    return datetime.combine(day, datetime.min.time(), tzinfo=LOCAL_TZ).astimezone(UTC)


def get_student(session: Session, *, actor: Actor, student_id: int) -> Student:
    """A student the actor may see (their school; a district officer: their district)."""
    student = session.get(Student, student_id)
    if student is None:
        raise NotAllowed("record_missing")
    school = session.get(School, student.school_id)
    if school is None or not Scope.for_staff(actor).allows(school):  # type: ignore[arg-type]
        raise NotAllowed("record_missing")  # same answer: do not confirm it exists elsewhere
    return student


# --- registration ---------------------------------------------------------------------------------------------


# What a registration reads while a teacher types and when it saves, as statements built once with parameters:
# building an ORM select on every call (its cache key) cost more than running it (~100-160 us against ~20 us),
# and /dangky runs these on three of its steps.
_student, _school = Student.__table__, School.__table__
_CODE_OWNER = (
    core_select(_school.c.name, _student.c.created_at)
    .join(_school, _school.c.id == _student.c.school_id)
    .where(_student.c.code == bindparam("code"), _student.c.id != bindparam("exclude_id"))
)
_SAME_BIRTH = (
    core_select(_student.c.id, _student.c.full_name)
    .where(
        _student.c.school_id == bindparam("school_id"),
        _student.c.birth_date == bindparam("birth_date", type_=_student.c.birth_date.type),
        _student.c.status.in_([ReviewStatus.PENDING, *REPORTED]),
        _student.c.id != bindparam("exclude_id"),
    )
    .order_by(_student.c.id)
)
_NO_STUDENT = cast(null(), Integer)  # typed: PostgreSQL resolves a bare NULL in a UNION as text
# A save's three checks in one round trip: the school's report state (kind 0), the code's owner (1), pupils of
# the school born that day (2). The first member's columns type the rest (UTCDateTime reads both times).
_SAVE_CHECKS = union_all(
    core_select(
        literal(0).label("kind"), _NO_STUDENT.label("id"), null().label("name"), _school.c.needs_report_submitted_at
    ).where(_school.c.id == bindparam("school_id")),
    _CODE_OWNER.with_only_columns(literal(1), _NO_STUDENT, _school.c.name, _student.c.created_at),
    _SAME_BIRTH.with_only_columns(literal(2), _student.c.id, _student.c.full_name, null()).order_by(None),
)
_NEW_STUDENT = {
    # ON CONFLICT DO NOTHING instead of a savepoint around the INSERT: a code registered concurrently returns no
    # id, and the transaction goes on (two round trips fewer than SAVEPOINT, INSERT, RELEASE).
    name: module.insert(_student).on_conflict_do_nothing(index_elements=["code"]).returning(_student.c.id)
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}
_NO_ID = 0  # ``exclude_id`` when nothing is excluded: ids start at 1


def code_owner(session: Session, *, code: str, exclude_id: int | None = None) -> tuple[str, datetime] | None:
    """Where a student code is already registered: the school's name and when (None: the code is free)."""
    row = session.execute(_CODE_OWNER, {"code": code, "exclude_id": exclude_id or _NO_ID}).first()
    return (row[0], row[1]) if row else None


def find_same_name_and_birth(
    session: Session, *, school_id: int, full_name: str, birth_date: date, exclude_id: int | None = None
) -> Student | None:
    """Same birth date and the same name once accents are set aside ("Le Thi Hoa" typed without a Vietnamese
    keyboard is still "Lê Thị Hoa")."""
    # Columns, not entities: this runs while a teacher types, and usually finds nothing.
    rows = session.execute(
        _SAME_BIRTH, {"school_id": school_id, "birth_date": birth_date, "exclude_id": exclude_id or _NO_ID}
    ).all()
    match = _same_name(rows, full_name)
    return session.get(Student, match) if match is not None else None


def _same_name(rows: Iterable[tuple[int, str]], full_name: str) -> int | None:
    from core.text import fold

    wanted = fold(full_name)
    return next((sid for sid, name in sorted(rows) if fold(name) == wanted), None)


def _duplicate_code_error(session: Session, code: str, exclude_id: int | None = None) -> DuplicateCode | None:
    owner = code_owner(session, code=code, exclude_id=exclude_id)
    if owner is None:
        return None
    school_name, registered_at = owner
    return DuplicateCode(code=code, school_name=school_name, registered_on=_local_day(registered_at))


def register_student(
    session: Session,
    *,
    actor: Actor,
    full_name: str,
    birth_date: date,
    class_name: str,
    code: str,
    gender: str,
    category: str,
    need: str,
    now: datetime,
    hardship_reason: str | None = None,
    guardian_name: str | None = None,
    guardian_phone: str | None = None,
    note: str | None = None,
    confirm_same_name: bool = False,
    consent_at: datetime | None = None,
) -> Student:
    """A new registration, pending the principal's review (a principal's own registration too: the review is
    a separate, deliberate step). Late if the school already submitted its needs report."""
    if actor.role not in (Role.TEACHER, Role.PRINCIPAL) or actor.school_id is None:
        raise NotAllowed("register_role")
    rows = session.execute(
        _SAVE_CHECKS, {"school_id": actor.school_id, "code": code, "birth_date": birth_date, "exclude_id": _NO_ID}
    ).all()
    (submitted_at,) = [at for kind, _, _, at in rows if kind == 0]
    owner = next(((name, at) for kind, _, name, at in rows if kind == 1), None)
    if owner is not None:
        raise DuplicateCode(code=code, school_name=owner[0], registered_on=_local_day(owner[1]))
    if not confirm_same_name:
        same = _same_name([(sid, name) for kind, sid, name, _ in rows if kind == 2], full_name)
        if same is not None:
            raise SameNameAndBirth(session.get(Student, same))
    student = Student(
        school_id=actor.school_id,
        code=code,
        full_name=full_name,
        birth_date=birth_date,
        gender=gender,
        class_name=class_name,
        category=category,
        hardship_reason=hardship_reason,
        need=need,
        guardian_name=guardian_name,
        guardian_phone=guardian_phone,
        note=note,
        status=ReviewStatus.PENDING,
        late=submitted_at is not None,
        consent_at=consent_at,  # the guardian's consent (storage.consent); None: not recorded
        registered_by=actor.id,
        created_at=now,
        updated_at=now,
    )
    student.id = _insert_new(session, student)
    # The row is written: the object joins the session as if loaded, so callers read and change it as before.
    make_transient_to_detached(student)
    session.add(student)
    audit.record(
        session,
        actor_id=actor.id,
        action="create",
        entity="student",
        entity_id=student.id,
        before=None,
        after=_snapshot(student),
        now=now,
    )
    return student


def _insert_new(session: Session, student: Student) -> int:
    """The new row's id; a code registered by someone else since the check refuses clearly, not with a 500."""
    values = {c.key: getattr(student, c.key) for c in _student.columns if c.key != "id"}
    session.flush()  # what the session holds goes first, as the ORM's own flush would have ordered it
    new_id = session.connection().execute(_NEW_STUDENT[session.get_bind().dialect.name], values).scalar()
    if new_id is None:
        dup = _duplicate_code_error(session, student.code)
        if dup is not None:
            raise dup
        raise RuntimeError(f"student code {student.code} taken and freed again meanwhile")  # as IntegrityError did
    return new_id


# --- class lists (spreadsheets) ------------------------------------------------------------------------------


def check_import_scope(session: Session, *, actor: Actor, school_id: int) -> School:
    """The school a list may be imported into: a teacher's or principal's own school; a district officer: a
    school of their district (``fieldbot students import``)."""
    school = session.get(School, school_id)
    if school is None:
        raise NotAllowed("school_missing")
    if actor.role in (Role.TEACHER, Role.PRINCIPAL):
        if actor.school_id != school.id:
            raise NotAllowed("import_own_school")
    elif actor.role == Role.DISTRICT_OFFICER:
        if actor.district_id != school.district_id:
            raise NotAllowed("import_own_district")
    else:
        raise NotAllowed("import_role")
    return school


def code_owners(session: Session, *, codes: list[str]) -> dict[str, tuple[str, date]]:
    """For the codes already registered anywhere: code -> (school name, day registered), in a few queries."""
    out: dict[str, tuple[str, date]] = {}
    for chunk in batching.chunks(session, sorted(set(codes))):
        q = (
            select(Student.code, School.name, Student.created_at)
            .join(School, School.id == Student.school_id)
            .where(batching.any_of(session, Student.code, chunk))
        )
        for code, school_name, created_at in session.execute(q).all():
            out[code] = (school_name, _local_day(created_at))
    return out


def same_name_and_birth_many(
    session: Session, *, school_id: int, people: list[tuple[str, date]]
) -> dict[tuple[str, date], Student]:
    """``find_same_name_and_birth`` for a whole list: (folded name, birth date) -> the existing entry."""
    from core.text import fold

    births = sorted({b for _, b in people})
    wanted = {(fold(n), b) for n, b in people}
    out: dict[tuple[str, date], Student] = {}
    for chunk in batching.chunks(session, births):
        q = select(Student).where(
            Student.school_id == school_id,
            batching.any_of(session, Student.birth_date, chunk),
            Student.status.in_([ReviewStatus.PENDING, *REPORTED]),
        )
        for st in session.exec(q.order_by(Student.id)).all():
            key = (fold(st.full_name), st.birth_date)
            if key in wanted and key not in out:
                out[key] = st
    return out


def import_students(
    session: Session,
    *,
    actor: Actor,
    school_id: int,
    rows: list[dict[str, Any]],
    file_name: str,
    sha256: str,
    now: datetime,
) -> StudentImport:
    """Save a checked class list: every row a pending registration (reviewed like /dangky), all in the caller's
    transaction — one bulk insert, so either every row is saved or none. A code registered meanwhile (another
    teacher, another file) refuses the whole list with ``DuplicateCode``."""
    from sqlalchemy import insert

    school = check_import_scope(session, actor=actor, school_id=school_id)
    if not rows:
        raise StudentError("import_empty")
    owners = code_owners(session, codes=[r["code"] for r in rows])
    if owners:
        code, (school_name, day) = next(iter(sorted(owners.items())))
        raise DuplicateCode(code=code, school_name=school_name, registered_on=day)
    batch = StudentImport(
        school_id=school.id,
        file_name=(file_name or "danh-sach")[:200],
        sha256=sha256,
        rows=len(rows),
        imported_by=actor.id,
        created_at=now,
    )
    late = school.needs_report_submitted_at is not None
    # The batch row first, outside the savepoint: SQLite's driver starts its transaction at the first write,
    # and a SAVEPOINT opened before that would be released as a commit of its own.
    session.add(batch)
    session.flush()
    try:
        with session.begin_nested():
            values = [
                {
                    **{f: r.get(f) for f in EDITABLE_FIELDS},
                    "school_id": school.id,
                    "status": ReviewStatus.PENDING,
                    "late": late,
                    "registered_by": actor.id,
                    "import_id": batch.id,
                    "consent_at": _consent_at(r.get("consent_on")),
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ]
            session.execute(insert(Student), values)
    except IntegrityError:
        owners = code_owners(session, codes=[r["code"] for r in rows])
        if owners:
            code, (school_name, day) = next(iter(sorted(owners.items())))
            raise DuplicateCode(code=code, school_name=school_name, registered_on=day) from None
        raise
    audit.record(
        session,
        actor_id=actor.id,
        action="import",
        entity="student_import",
        entity_id=batch.id,
        before=None,
        after={"school_id": school.id, "file_name": batch.file_name, "sha256": sha256, "rows": len(rows)},
        now=now,
    )
    return batch


def pending_in_import(session: Session, *, school_id: int, import_id: int) -> int:
    q = (
        select(func.count())
        .select_from(Student)
        .where(Student.school_id == school_id, Student.import_id == import_id, Student.status == ReviewStatus.PENDING)
    )
    return int(session.exec(q).one())


def approve_import(session: Session, *, actor: Actor, import_id: int, now: datetime) -> list[Student]:
    """ "Approve all from this file": every still-pending entry of one imported list, each audited."""
    if actor.role != Role.PRINCIPAL:
        raise NotAllowed("review_role")
    batch = session.get(StudentImport, import_id)
    if batch is None:
        raise NotAllowed("import_missing")
    _check_school(actor, batch.school_id)
    q = select(Student).where(Student.import_id == import_id, Student.status == ReviewStatus.PENDING)
    done: list[Student] = []
    for student in session.exec(q.order_by(Student.id)).all():
        done.append(approve(session, actor=actor, student_id=student.id, now=now))
    return done


# --- review ----------------------------------------------------------------------------------------------------


def list_pending(
    session: Session, *, school_id: int, exclude_ids: tuple[int, ...] | list[int] = (), limit: int | None = None
) -> list[Student]:
    """Registrations waiting for the principal, oldest first."""
    q = select(Student).where(Student.school_id == school_id, Student.status == ReviewStatus.PENDING)
    if exclude_ids:
        q = q.where(Student.id.not_in(list(exclude_ids)))
    q = q.order_by(Student.created_at, Student.id)
    if limit is not None:
        q = q.limit(limit)
    return list(session.exec(q).all())


def count_pending(session: Session, *, school_id: int) -> int:
    q = (
        select(func.count())
        .select_from(Student)
        .where(Student.school_id == school_id, Student.status == ReviewStatus.PENDING)
    )
    return int(session.exec(q).one())


def _reviewable(session: Session, actor: Actor, student_id: int) -> Student:
    if actor.role != Role.PRINCIPAL:
        raise NotAllowed("review_role")
    student = session.get(Student, student_id)
    if student is None:
        raise NotAllowed("record_missing")
    _check_school(actor, student.school_id)
    return student


def approve(session: Session, *, actor: Actor, student_id: int, now: datetime) -> Student:
    student = _reviewable(session, actor, student_id)
    if student.status != ReviewStatus.PENDING:
        raise WrongState("already_reviewed")
    before = _snapshot(student, ("status",))
    student.status, student.reviewed_by, student.reviewed_at, student.updated_at = (
        ReviewStatus.APPROVED,
        actor.id,
        now,
        now,
    )
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="approve",
        entity="student",
        entity_id=student.id,
        before=before,
        after={"status": student.status},
        now=now,
    )
    return student


def reject(session: Session, *, actor: Actor, student_id: int, reason: str, now: datetime) -> Student:
    student = _reviewable(session, actor, student_id)
    if student.status != ReviewStatus.PENDING:
        raise WrongState("already_reviewed")
    if not reason.strip():
        raise StudentError("reason_needed")
    before = _snapshot(student, ("status",))
    student.status, student.reject_reason = ReviewStatus.REJECTED, reason.strip()[:500]
    student.reviewed_by, student.reviewed_at, student.updated_at = actor.id, now, now
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="reject",
        entity="student",
        entity_id=student.id,
        before=before,
        after={"status": student.status, "reason": student.reject_reason},
        now=now,
    )
    return student


# --- withdrawal ------------------------------------------------------------------------------------------------


def _served(session: Session, student_id: int) -> bool:
    q = select(Handover.id).where(Handover.student_id == student_id, Handover.status == HandoverStatus.ACTIVE)
    return session.exec(q).first() is not None


def withdraw(session: Session, *, actor: Actor, student_id: int, reason: str | None, now: datetime) -> Student:
    """Withdraw an entry. Pending: withdrawn at once (its registrant or the principal). Approved: the
    principal withdraws it; a teacher's withdrawal becomes a request (WITHDRAWING) the principal confirms."""
    student = session.get(Student, student_id)
    if student is None:
        raise NotAllowed("record_missing")
    _check_school(actor, student.school_id)
    if actor.role == Role.TEACHER and student.registered_by != actor.id:
        raise NotAllowed("withdraw_own")
    if _served(session, student.id):
        raise WrongState("withdraw_served")
    before = _snapshot(student, ("status",))
    if student.status == ReviewStatus.PENDING or (student.status in REPORTED and actor.role == Role.PRINCIPAL):
        student.status = ReviewStatus.WITHDRAWN
        action = "withdraw"
    elif student.status == ReviewStatus.APPROVED:
        student.status = ReviewStatus.WITHDRAWING
        action = "withdraw_request"
    else:
        raise WrongState("withdraw_state")
    student.updated_at = now
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action=action,
        entity="student",
        entity_id=student.id,
        before=before,
        after={"status": student.status, "reason": reason},
        now=now,
    )
    return student


def list_withdrawal_requests(session: Session, *, school_id: int) -> list[Student]:
    q = select(Student).where(Student.school_id == school_id, Student.status == ReviewStatus.WITHDRAWING)
    return list(session.exec(q.order_by(Student.updated_at, Student.id)).all())


def decide_withdrawal(session: Session, *, actor: Actor, student_id: int, accept: bool, now: datetime) -> Student:
    student = _reviewable(session, actor, student_id)
    if student.status != ReviewStatus.WITHDRAWING:
        raise WrongState("no_withdrawal")
    student.status = ReviewStatus.WITHDRAWN if accept else ReviewStatus.APPROVED
    student.updated_at = now
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="withdraw" if accept else "withdraw_declined",
        entity="student",
        entity_id=student.id,
        before={"status": ReviewStatus.WITHDRAWING},
        after={"status": student.status},
        now=now,
    )
    return student


# --- corrections -----------------------------------------------------------------------------------------------


def can_edit(actor: Actor, student: Student) -> bool:
    if actor.role == Role.DISTRICT_OFFICER or actor.school_id != student.school_id:
        return False
    if student.status in (ReviewStatus.WITHDRAWN, ReviewStatus.WITHDRAWING):
        return False
    return actor.role == Role.PRINCIPAL or student.registered_by == actor.id


def update_student_field(
    session: Session, *, actor: Actor, student_id: int, field: str, value: Any, now: datetime
) -> Student:
    """Change one field, audited with before and after. A rejected entry that is corrected goes back to the
    principal (pending)."""
    if field not in EDITABLE_FIELDS:
        raise NotAllowed("field_not_editable", field=field)
    student = session.get(Student, student_id)
    if student is None:
        raise NotAllowed("record_missing")
    if not can_edit(actor, student):
        raise NotAllowed("edit_not_allowed")
    old = getattr(student, field)
    if old == value:
        return student
    if field == "code":
        dup = _duplicate_code_error(session, value, exclude_id=student.id)
        if dup is not None:
            raise dup
    setattr(student, field, value)
    after: dict[str, Any] = {field: value}
    before: dict[str, Any] = {field: old}
    if student.status == ReviewStatus.REJECTED:
        before["status"], student.status, after["status"] = student.status, ReviewStatus.PENDING, ReviewStatus.PENDING
        student.reject_reason = None
    student.updated_at = now
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="update",
        entity="student",
        entity_id=student.id,
        before=before,
        after=after,
        now=now,
    )
    return student


def recent_by(session: Session, *, staff_id: int, limit: int = 10) -> list[Student]:
    """A person's own most recent registrations."""
    q = select(Student).where(Student.registered_by == staff_id)
    return list(session.exec(q.order_by(Student.created_at.desc(), Student.id.desc()).limit(limit)).all())


# --- handover support ---------------------------------------------------------------------------------------------


def search_unserved_students(session: Session, *, school_id: int, query: str, limit: int = 8) -> list[Student]:
    """Approved students of a school without an active handover whose name (accents optional, any word
    order) or code matches ``query``; an empty query lists them by name."""
    from core.text import fold

    served = select(Handover.student_id).where(Handover.status == HandoverStatus.ACTIVE)
    q = (
        select(Student)
        .where(Student.school_id == school_id, Student.status == ReviewStatus.APPROVED, Student.id.not_in(served))
        .order_by(Student.full_name, Student.id)
    )
    digits = "".join(ch for ch in query if ch.isdigit())
    if digits and len(digits) >= 3 and digits == query.strip().replace(" ", ""):
        # autoescape: "%", "_" and "\\" in a value are matched literally, never as LIKE wildcards
        q = q.where(Student.code.contains(digits, autoescape=True))
        return list(session.exec(q.limit(limit)).all())
    words = fold(query).split()
    if query.strip() and not words:  # only symbols ("%", "_", "*"): they match no name, not every name
        return []
    out: list[Student] = []
    for student in session.exec(q).all():
        name_words = fold(student.full_name).split()
        if all(any(nw.startswith(w) for nw in name_words) for w in words):
            out.append(student)
            if len(out) >= limit:
                break
    return out


# --- the needs report ---------------------------------------------------------------------------------------------


def needs_report_counts(session: Session, *, school_id: int) -> dict[str, Any]:
    """{"total", "by_category": {category: n}, "by_need": {need: n}, "pending": n} over approved students."""
    rows = session.exec(
        select(Student.category, Student.need).where(Student.school_id == school_id, Student.status.in_(list(REPORTED)))
    ).all()
    by_category = Counter(r[0] for r in rows)
    by_need = Counter(r[1] for r in rows)
    return {
        "total": len(rows),
        "by_category": dict(by_category),
        "by_need": dict(by_need),
        "pending": count_pending(session, school_id=school_id),
    }


def submit_needs_report(session: Session, *, actor: Actor, now: datetime) -> School:
    if actor.role != Role.PRINCIPAL or actor.school_id is None:
        raise NotAllowed("submit_role")
    school = session.get(School, actor.school_id)
    assert school is not None
    if school.needs_report_submitted_at is not None:
        raise AlreadySubmitted("already_submitted")
    school.needs_report_submitted_at, school.needs_report_submitted_by = now, actor.id
    session.add(school)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="submit_needs_report",
        entity="school",
        entity_id=school.id,
        before=None,
        after=needs_report_counts(session, school_id=school.id),
        now=now,
    )
    return school


def principals_of(session: Session, *, school_id: int) -> list[Staff]:
    q = select(Staff).where(Staff.school_id == school_id, Staff.role == Role.PRINCIPAL, Staff.active.is_(True))
    return list(session.exec(q).all())
