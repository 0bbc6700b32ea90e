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
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlmodel import Session

from core.clock import local_midnight_utc
from core.programme import Programme
from core.vocabulary import HandoverStatus, ReviewStatus
from storage.models import Batch, District, Handover, School, Student
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
    return _late(session, in_scope=scope.filter, programme=programme, now=now, limit=limit)


def late_in_provinces(
    session: Session, *, programme: Programme, now: datetime, older_than: timedelta
) -> list[LateItem]:
    """The items of every district that has a province, late for at least ``older_than`` at ``now``, oldest first
    (the province escalation): ``late_items`` of each district, in four queries for the whole country that read
    only items late enough, instead of five queries a district (700 nationally) every sweep."""
    with_province = select(District.id).where(District.province_id.is_not(None))
    return _late(
        session,
        in_scope=lambda school_id: school_id.in_(select(School.id).where(School.district_id.in_(with_province))),
        programme=programme,
        now=now,
        since_before=now - older_than,
    )


def _late(
    session: Session,
    *,
    in_scope: Callable[[Any], ColumnElement[bool]],
    programme: Programme,
    now: datetime,
    limit: int | None = None,
    since_before: datetime | None = None,
) -> list[LateItem]:
    """``in_scope(column)``: the WHERE clause for a school id column; ``since_before``: only items late since
    then or earlier. Each query joins the (active) school it names, so no school list is read first."""
    d = programme.deadlines
    tz = programme.tz
    latest = since_before if since_before is not None else now
    out: list[LateItem] = []
    grace = timedelta(hours=d.handover_update_grace_hours)
    active = School.active

    # due + grace <= now, and late since (due + grace) <= since_before
    for r in session.execute(
        select(
            Handover.id,
            Handover.school_id,
            Handover.csdl_due_at,
            Student.full_name,
            Student.class_name,
            School.name,
            School.district_id,
        )
        .join(Student, Student.id == Handover.student_id)
        .join(School, School.id == Handover.school_id)
        .where(
            Handover.csdl_updated_at.is_(None),
            Handover.status == HandoverStatus.ACTIVE,
            Handover.csdl_due_at <= min(now, latest) - grace,
            in_scope(Handover.school_id),
            active,
        )
    ).all():
        out.append(
            LateItem(
                "csdl",
                r.school_id,
                r.name,
                r.district_id,
                r.csdl_due_at + grace,
                r.id,
                student=r.full_name,
                class_name=r.class_name,
            )
        )

    # received_on + n <= today; late since local midnight of received_on + n, <= since_before
    n = timedelta(days=d.devices_waiting_days)
    received_by = min(now.astimezone(tz).date(), latest.astimezone(tz).date()) - n
    for r in session.execute(
        select(
            Batch.id,
            Batch.school_id,
            Batch.received_on,
            Batch.quantity,
            Batch.handed_over,
            School.name,
            School.district_id,
        )
        .join(School, School.id == Batch.school_id)
        .where(
            Batch.handed_over < Batch.quantity,
            Batch.received_on <= received_by,
            in_scope(Batch.school_id),
            active,
        )
    ).all():
        since = local_midnight_utc(r.received_on + n, tz)
        if since <= latest:
            out.append(
                LateItem("devices", r.school_id, r.name, r.district_id, since, r.id, left=r.quantity - r.handed_over)
            )

    if now >= programme.needs_report_due and programme.needs_report_due <= latest:
        for r in session.execute(
            select(School.id, School.name, School.district_id).where(
                in_scope(School.id), active, School.needs_report_submitted_at.is_(None)
            )
        ).all():
            out.append(LateItem("needs_report", r.id, r.name, r.district_id, programme.needs_report_due, r.id))

    wait = timedelta(days=d.pending_review_days)
    for r in session.execute(
        select(
            Student.id,
            Student.school_id,
            Student.full_name,
            Student.class_name,
            Student.created_at,
            School.name,
            School.district_id,
        )
        .join(School, School.id == Student.school_id)
        .where(
            Student.status == ReviewStatus.PENDING,
            Student.created_at <= min(now, latest) - wait,
            in_scope(Student.school_id),
            active,
        )
    ).all():
        out.append(
            LateItem(
                "review",
                r.school_id,
                r.name,
                r.district_id,
                r.created_at + wait,
                r.id,
                student=r.full_name,
                class_name=r.class_name,
            )
        )

    out.sort(key=lambda i: (i.since, i.school_name, i.kind, i.subject_id))
    return out[:limit] if limit is not None else out
