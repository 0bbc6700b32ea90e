"""The guardian's consent to the programme using the child's data (Decree 13/2023/NĐ-CP: children's data needs
a parent's or guardian's consent).

/dangky asks it first (the notice text is the programme file's ``[privacy]``); a "No" saves nothing. The date
is ``Student.consent_at``; registrations made before consent was asked have NULL ("consent not recorded") and
are counted for the principal, who completes them with /dongy.

For other ways in (the bulk import): ask once with the same notice (``notice``), then pass
``consent_at=now`` to ``students.register_student`` for every row — or call ``record_consent`` afterwards.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from core.programme import Programme
from core.vocabulary import ReviewStatus, Role
from storage import audit
from storage.errors import RecordError
from storage.models import Student
from storage.scope import Scope

# Registrations the principal still has to complete: standing ones (rejected and withdrawn do not count).
STANDING = (ReviewStatus.PENDING, ReviewStatus.APPROVED, ReviewStatus.WITHDRAWING)


class ConsentError(RecordError):
    """``consent_missing`` or ``consent_not_yours``, worded in conversations/refusals.py."""


def notice(programme: Programme, lang: str = "vi") -> str:
    """The notice read to the guardian, from the programme file (plain text: escape it for HTML)."""
    p = programme.privacy
    return p.notice_en if lang == "en" else p.notice_vi


def record_consent(session: Session, *, actor, student_id: int, now: datetime) -> Student:
    """Record that the guardian agreed, for a registration made before consent was asked (audited). The
    principal of the school, or the teacher who registered the pupil."""
    student = session.get(Student, student_id)
    if student is None or actor.role not in (Role.PRINCIPAL, Role.TEACHER) or actor.school_id != student.school_id:
        raise ConsentError("consent_missing")
    if actor.role == Role.TEACHER and student.registered_by != actor.id:
        raise ConsentError("consent_not_yours")
    if student.consent_at is not None:
        return student
    student.consent_at, student.updated_at = now, now
    session.add(student)
    session.flush()
    audit.record(
        session,
        actor_id=actor.id,
        action="consent",
        entity="student",
        entity_id=student.id,
        before={"consent_at": None},
        after={"consent_at": now},
        now=now,
    )
    return student


def without_consent(session: Session, *, actor, limit: int = 20) -> list[Student]:
    """Standing registrations without a recorded consent that ``actor`` may complete, oldest first."""
    q = select(Student).where(
        Student.school_id == actor.school_id, Student.consent_at.is_(None), Student.status.in_(STANDING)
    )
    if actor.role == Role.TEACHER:
        q = q.where(Student.registered_by == actor.id)
    return list(session.scalars(q.order_by(Student.created_at, Student.id).limit(limit)))


def count_without_consent(session: Session, *, scope: Scope) -> dict[int, int]:
    """{school_id: standing registrations whose consent is not recorded} within ``scope``."""
    rows = session.execute(
        select(Student.school_id, func.count())
        .where(scope.filter(Student.school_id), Student.consent_at.is_(None), Student.status.in_(STANDING))
        .group_by(Student.school_id)
    ).all()
    return {sid: int(n) for sid, n in rows}
