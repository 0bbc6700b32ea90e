"""What is late across a scope, oldest first: the web view's late list and the province escalation.

Four kinds, with the deadlines the scheduler chases (programme file ``[deadlines]``):
- ``csdl``: an active handover not confirmed in the sector database, late since its due time + grace hours
  (the same definition as ``reports.summary``'s late_csdl);
- ``devices``: a batch with computers not handed over ``devices_waiting_days`` after receipt, late since the
  start of that day;
- ``needs_report``: a school without a submitted needs report after the deadline;
- ``review``: a registration pending longer than ``pending_review_days``.
Every query goes through ``Scope.filter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core.clock import local_midnight_utc
from core.programme import Programme
from core.vocabulary import HandoverStatus, ReviewStatus
from storage.models import Batch, Handover, School, Student
from storage.scope import Scope

KINDS = ("csdl", "devices", "needs_report", "review")


@dataclass
class LateItem:
    kind: str
    school_id: int
    school_name: str
    district_id: int
    since: datetime  # aware UTC: when it became late
    subject_id: int  # handover, batch, school or student id
    student: str | None = None  # the pupil's name (csdl, review)
    class_name: str | None = None
    left: int | None = None  # computers not handed over (devices)

    def age_days(self, now: datetime) -> int:
        return max(0, (now - self.since).days)


def late_items(
    session: Session, *, scope: Scope, programme: Programme, now: datetime, limit: int | None = None
) -> list[LateItem]:
    """Every late item in ``scope`` at ``now``, oldest first (``limit``: the oldest ones only)."""
    d = programme.deadlines
    tz = programme.tz
    schools = {
        r.id: r
        for r in session.execute(
            select(School.id, School.name, School.district_id, School.needs_report_submitted_at).where(
                scope.filter(School.id), School.active
            )
        ).all()
    }
    out: list[LateItem] = []

    def item(kind: str, sid: int, since: datetime, subject: int, **kw) -> None:
        s = schools.get(sid)
        if s is not None:
            out.append(LateItem(kind, sid, s.name, s.district_id, since, subject, **kw))

    late_before = now - timedelta(hours=d.handover_update_grace_hours)
    grace = timedelta(hours=d.handover_update_grace_hours)
    for r in session.execute(
        select(Handover.id, Handover.school_id, Handover.csdl_due_at, Student.full_name, Student.class_name)
        .join(Student, Student.id == Handover.student_id)
        .where(
            Handover.csdl_updated_at.is_(None),
            Handover.status == HandoverStatus.ACTIVE,
            Handover.csdl_due_at <= late_before,
            scope.filter(Handover.school_id),
        )
    ).all():
        item("csdl", r.school_id, r.csdl_due_at + grace, r.id, student=r.full_name, class_name=r.class_name)

    today = now.astimezone(tz).date()
    n = timedelta(days=d.devices_waiting_days)
    for r in session.execute(
        select(Batch.id, Batch.school_id, Batch.received_on, Batch.quantity, Batch.handed_over).where(
            Batch.handed_over < Batch.quantity, Batch.received_on <= today - n, scope.filter(Batch.school_id)
        )
    ).all():
        item("devices", r.school_id, local_midnight_utc(r.received_on + n, tz), r.id, left=r.quantity - r.handed_over)

    if now >= programme.needs_report_due:
        for s in schools.values():
            if s.needs_report_submitted_at is None:
                item("needs_report", s.id, programme.needs_report_due, s.id)

    wait = timedelta(days=d.pending_review_days)
    for r in session.execute(
        select(Student.id, Student.school_id, Student.full_name, Student.class_name, Student.created_at).where(
            Student.status == ReviewStatus.PENDING, Student.created_at <= now - wait, scope.filter(Student.school_id)
        )
    ).all():
        item("review", r.school_id, r.created_at + wait, r.id, student=r.full_name, class_name=r.class_name)

    out.sort(key=lambda i: (i.since, i.school_name, i.kind, i.subject_id))
    return out[:limit] if limit is not None else out
