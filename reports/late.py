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
from datetime import date, datetime, timedelta
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


@dataclass
class ReadAlready:
    """Rows a caller has read already that hold every late item, so ``late_in_provinces`` reads none again (the
    sweep's finders read them each tick). Each list is its own query's rows, with a cutoff at or after the one
    that makes an item late here; the rest of the query is the same:
    - ``handovers``: id, school_id, csdl_due_at of handovers not confirmed in the sector database (active);
    - ``batches``: id, school_id, received_on, quantity, handed_over of batches with computers left;
    - ``pending``: id, school_id, full_name, class_name, created_at of registrations waiting for review;
    - ``unreported``: the active schools without a needs report (None: not read; only needed once it is late);
    - ``school``: a school's (name, district id) if it is active and its district has a province, else None."""

    handovers: list
    batches: list
    pending: list
    unreported: list[int] | None
    school: Callable[[int], tuple[str, int] | None]


def late_in_provinces(
    session: Session,
    *,
    programme: Programme,
    now: datetime,
    older_than: timedelta,
    read_already: ReadAlready | None = None,
) -> list[LateItem]:
    """The items of every district that has a province, late for at least ``older_than`` at ``now``, oldest first
    (the province escalation): ``late_items`` of each district, in five queries for the whole country that read
    only items late enough, instead of five queries a district (700 nationally) every sweep; with
    ``read_already``, from those rows (filtered here by the same cutoffs), with no query."""
    found = _found_in(read_already, programme=programme, now=now, older_than=older_than)
    if found is not None:
        schools = {sid: school for sid in {f[1] for f in found} if (school := read_already.school(sid)) is not None}
        return _items(found, schools)
    return _late(
        session,
        in_scope=lambda _school_id: true(),  # only late rows are read: the schools are filtered when looked up
        school_filter=School.district_id.in_(select(District.id).where(District.province_id.is_not(None))),
        programme=programme,
        now=now,
        since_before=now - older_than,
        pupils=False,  # the escalation names districts and schools: no look-up of a thousand pupils' names
    )


@dataclass(frozen=True)
class _Cutoffs:
    """What makes an item late at ``now`` (and late since ``latest`` already): the moment it must be due, received
    or registered by."""

    grace: timedelta  # a handover is late from csdl_due_at + grace
    csdl_due_by: datetime
    wait: timedelta  # a registration is late from created_at + wait
    created_by: datetime
    devices_after: timedelta  # a batch is late from local midnight of received_on + n days
    received_by: date
    needs_report_late: bool
    tz: Any

    @classmethod
    def of(cls, programme: Programme, *, now: datetime, latest: datetime) -> _Cutoffs:
        d, tz = programme.deadlines, programme.tz
        grace = timedelta(hours=d.handover_update_grace_hours)
        review_wait = timedelta(days=d.pending_review_days)
        n = timedelta(days=d.devices_waiting_days)
        return cls(
            grace=grace,
            csdl_due_by=min(now, latest) - grace,
            wait=review_wait,
            created_by=min(now, latest) - review_wait,
            devices_after=n,
            received_by=min(now.astimezone(tz).date(), latest.astimezone(tz).date()) - n,
            needs_report_late=now >= programme.needs_report_due and programme.needs_report_due <= latest,
            tz=tz,
        )

    def devices_since(self, received_on: date) -> datetime:
        return _midnight(received_on + self.devices_after, self.tz)


_midnight = cache(local_midnight_utc)  # batches share a few receipt days


def oldest_late_in_provinces(
    session: Session,
    *,
    programme: Programme,
    now: datetime,
    older_than: timedelta,
    read_already: ReadAlready | None = None,
) -> dict[int, datetime]:
    """For each district in ``late_in_provinces``: when its oldest item became late (its first item's ``since``),
    without making the items. What the province escalation needs every tick; the items only word a new one."""
    oldest: dict[int, datetime] = {}
    found = _found_in(read_already, programme=programme, now=now, older_than=older_than)
    if found is None:
        for item in late_in_provinces(session, programme=programme, now=now, older_than=older_than):
            oldest.setdefault(item.district_id, item.since)  # oldest first
        return oldest
    for _kind, sid, since, *_ in found:
        school = read_already.school(sid)  # type: ignore[union-attr]
        if school is not None and (school[1] not in oldest or since < oldest[school[1]]):
            oldest[school[1]] = since
    return oldest


def _found_in(
    rows: ReadAlready | None, *, programme: Programme, now: datetime, older_than: timedelta
) -> list[tuple] | None:
    """The late items in rows read already (``_late``'s cutoffs, applied here), as ``_items`` takes them; None when
    there are no such rows or they lack what is late (the unreported schools, once the report is late)."""
    if rows is None:
        return None
    c = _Cutoffs.of(programme, now=now, latest=now - older_than)
    if c.needs_report_late and rows.unreported is None:
        return None
    found = [
        ("csdl", r.school_id, r.csdl_due_at + c.grace, r.id, None, None, None)
        for r in rows.handovers
        if r.csdl_due_at <= c.csdl_due_by
    ]
    found += [
        ("devices", r.school_id, c.devices_since(r.received_on), r.id, None, None, r.quantity - r.handed_over)
        for r in rows.batches
        if r.received_on <= c.received_by
    ]
    if c.needs_report_late:
        found += [("needs_report", sid, programme.needs_report_due, sid, None, None, None) for sid in rows.unreported]
    found += [
        ("review", r.school_id, r.created_at + c.wait, r.id, r.full_name, r.class_name, None)
        for r in rows.pending
        if r.created_at <= c.created_by
    ]
    return found


def _items(found: list[tuple], schools: dict[int, tuple[str, int]], limit: int | None = None) -> list[LateItem]:
    """``found``: LateItem's fields but the school's, (kind, school id, since, subject id, student, class name,
    left); ``schools``: the schools that count, id -> (name, district id). Oldest first."""
    out = [
        LateItem(kind, sid, school[0], school[1], since, subject, student, class_name, left)
        for kind, sid, since, subject, student, class_name, left in found
        if (school := schools.get(sid)) is not None
    ]
    out.sort(key=lambda i: (i.since, i.school_name, i.kind, i.subject_id))
    return out[:limit] if limit is not None else out


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
    c = _Cutoffs.of(programme, now=now, latest=since_before if since_before is not None else now)
    read = session.connection().execute  # plain rows: no ORM work per row (a national sweep reads thousands)
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
            Handover.csdl_due_at <= c.csdl_due_by,  # late since due + grace
            in_scope(Handover.school_id),
        )
    ).all():
        pupil = (r.full_name, r.class_name) if pupils else (None, None)
        found.append(("csdl", r.school_id, r.csdl_due_at + c.grace, r.id, *pupil, None))

    for r in read(
        select(Batch.id, Batch.school_id, Batch.received_on, Batch.quantity, Batch.handed_over).where(
            Batch.handed_over < Batch.quantity, Batch.received_on <= c.received_by, in_scope(Batch.school_id)
        )
    ).all():
        found.append(
            ("devices", r.school_id, c.devices_since(r.received_on), r.id, None, None, r.quantity - r.handed_over)
        )

    if c.needs_report_late:
        for sid in (
            read(
                select(School.id).where(in_scope(School.id), School.active, School.needs_report_submitted_at.is_(None))
            )
            .scalars()
            .all()
        ):
            found.append(("needs_report", sid, programme.needs_report_due, sid, None, None, None))

    for r in read(
        select(Student.id, Student.school_id, Student.full_name, Student.class_name, Student.created_at).where(
            Student.status == ReviewStatus.PENDING,
            Student.created_at <= c.created_by,  # late since created + wait
            in_scope(Student.school_id),
        )
    ).all():
        found.append(("review", r.school_id, r.created_at + c.wait, r.id, r.full_name, r.class_name, None))

    ids = sorted({f[1] for f in found})
    schools = {}
    for chunk in batching.chunks(session, ids):
        q = select(School.id, School.name, School.district_id).where(
            batching.any_of(session, School.id, chunk), School.active
        )
        if school_filter is not None:
            q = q.where(school_filter)
        schools.update({r.id: (r.name, r.district_id) for r in read(q).all()})
    return _items(found, schools, limit)
