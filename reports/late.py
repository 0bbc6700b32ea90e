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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlmodel import Session

from core.clock import local_midnight_utc
from core.programme import Programme
from core.vocabulary import HandoverStatus, ReviewStatus
from storage import batching
from storage.models import Batch, District, Handover, School, Student
from storage.scope import Scope

KINDS = ("csdl", "devices", "needs_report", "review")


@dataclass(slots=True)
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
    return _late(session, in_scope=scope.filter, programme=programme, now=now, limit=limit)


def late_in_provinces(
    session: Session, *, programme: Programme, now: datetime, older_than: timedelta
) -> list[LateItem]:
    """The items of every district that has a province, late for at least ``older_than`` at ``now``, oldest first
    (the province escalation): ``late_items`` of each district, in five queries for the whole country that read
    only items late enough, instead of five queries a district (700 nationally) every sweep."""
    return _late(
        session,
        in_scope=lambda _school_id: true(),  # only late rows are read: the schools are filtered when looked up
        school_filter=School.district_id.in_(select(District.id).where(District.province_id.is_not(None))),
        programme=programme,
        now=now,
        since_before=now - older_than,
        pupils=False,  # the escalation names districts and schools: no look-up of a thousand pupils' names
    )


def _late(
    session: Session,
    *,
    in_scope: Callable[[Any], ColumnElement[bool]],
    programme: Programme,
    now: datetime,
    limit: int | None = None,
    since_before: datetime | None = None,
    school_filter: ColumnElement[bool] | None = None,
    pupils: bool = True,
) -> list[LateItem]:
    """``in_scope(column)``: the WHERE clause for a school id column; ``since_before``: only items late since then
    or earlier; ``school_filter``: a further condition on the schools; ``pupils``: read the pupil's name and class
    of a late handover (None without). Late rows are read first and only the (active) schools they name are
    looked up, so the cost follows what is late, not the number of schools."""
    d = programme.deadlines
    tz = programme.tz
    read = session.connection().execute  # plain rows: no ORM work per row (a national sweep reads thousands)
    latest = since_before if since_before is not None else now
    grace = timedelta(hours=d.handover_update_grace_hours)
    # LateItem's fields but the school's name and district, before the schools are known:
    # (kind, school id, since, subject id, student, class name, left)
    found: list[tuple] = []

    handovers = select(Handover.id, Handover.school_id, Handover.csdl_due_at)
    if pupils:
        handovers = handovers.add_columns(Student.full_name, Student.class_name).join(
            Student, Student.id == Handover.student_id
        )
    for r in read(
        handovers.where(
            Handover.csdl_updated_at.is_(None),
            Handover.status == HandoverStatus.ACTIVE,
            Handover.csdl_due_at <= min(now, latest) - grace,  # late since due + grace
            in_scope(Handover.school_id),
        )
    ).all():
        pupil = (r.full_name, r.class_name) if pupils else (None, None)
        found.append(("csdl", r.school_id, r.csdl_due_at + grace, r.id, *pupil, None))

    # late since local midnight of received_on + n days
    n = timedelta(days=d.devices_waiting_days)
    received_by = min(now.astimezone(tz).date(), latest.astimezone(tz).date()) - n
    midnight = cache(lambda day: local_midnight_utc(day, tz))  # batches share a few receipt days
    for r in read(
        select(Batch.id, Batch.school_id, Batch.received_on, Batch.quantity, Batch.handed_over).where(
            Batch.handed_over < Batch.quantity, Batch.received_on <= received_by, in_scope(Batch.school_id)
        )
    ).all():
        found.append(
            ("devices", r.school_id, midnight(r.received_on + n), r.id, None, None, r.quantity - r.handed_over)
        )

    if now >= programme.needs_report_due and programme.needs_report_due <= latest:
        for sid in (
            read(
                select(School.id).where(in_scope(School.id), School.active, School.needs_report_submitted_at.is_(None))
            )
            .scalars()
            .all()
        ):
            found.append(("needs_report", sid, programme.needs_report_due, sid, None, None, None))

    wait = timedelta(days=d.pending_review_days)
    for r in read(
        select(Student.id, Student.school_id, Student.full_name, Student.class_name, Student.created_at).where(
            Student.status == ReviewStatus.PENDING,
            Student.created_at <= min(now, latest) - wait,  # late since created + wait
            in_scope(Student.school_id),
        )
    ).all():
        found.append(("review", r.school_id, r.created_at + wait, r.id, r.full_name, r.class_name, None))

    ids = sorted({f[1] for f in found})
    schools = {}
    for chunk in batching.chunks(session, ids):
        q = select(School.id, School.name, School.district_id).where(
            batching.any_of(session, School.id, chunk), School.active
        )
        if school_filter is not None:
            q = q.where(school_filter)
        schools.update({r.id: r for r in read(q).all()})
    out = [
        LateItem(kind, sid, school.name, school.district_id, since, subject, student, class_name, left)
        for kind, sid, since, subject, student, class_name, left in found
        if (school := schools.get(sid)) is not None
    ]
    out.sort(key=lambda i: (i.since, i.school_name, i.kind, i.subject_id))
    return out[:limit] if limit is not None else out
