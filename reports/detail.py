"""One school in full, for the web view's school page: pupils and their status, handovers with their photos
and flags, batches received, and what is late. Read only through the asker's ``Scope``: a school outside it
is ``None`` (the page answers 404), never an error that tells it exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlmodel import Session

from core.programme import Programme
from core.vocabulary import HandoverStatus
from reports.late import LateItem, late_items
from reports.summary import SchoolSummary, build_summary
from storage.models import Batch, Flag, Handover, HandoverPhoto, Photo, School, Student
from storage.scope import Scope


@dataclass
class PupilRow:
    id: int
    code: str
    full_name: str
    class_name: str
    category: str
    need: str
    status: str
    handed_over_on: date | None = None


@dataclass
class HandoverRow:
    id: int
    student: str
    class_name: str
    handed_over_on: date
    csdl_due_at: datetime
    csdl_updated_at: datetime | None
    minutes_signed_at: datetime | None = None  # the photo of the signed minutes (biên bản) came
    photo_ids: list[int] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # FlagKind values, open ones

    @property
    def code(self) -> str:
        from reports.minutes import handover_code

        return handover_code(self.id)


@dataclass
class BatchRow:
    id: int
    source: str
    received_on: date
    quantity: int
    handed_over: int
    device_type: str
    brand_model: str


@dataclass
class SchoolDetail:
    school: School
    summary: SchoolSummary
    pupils: list[PupilRow]
    handovers: list[HandoverRow]
    batches: list[BatchRow]
    late: list[LateItem]


def school_detail(
    session: Session, *, scope: Scope, school_id: int, programme: Programme, now: datetime
) -> SchoolDetail | None:
    if not scope.contains(session, school_id):
        return None
    school = session.get(School, school_id)
    if school is None:
        return None
    one = Scope(district_id=school.district_id, school_id=school.id)
    summary = build_summary(session, scope=one, programme=programme, now=now)
    row = (
        summary.schools[0]
        if summary.schools
        else SchoolSummary(school_id=school.id, code=school.code, name=school.name)
    )

    handovers: dict[int, HandoverRow] = {}
    served: dict[int, date] = {}
    for h in session.execute(
        select(
            Handover.id,
            Handover.student_id,
            Handover.handed_over_on,
            Handover.csdl_due_at,
            Handover.csdl_updated_at,
            Handover.minutes_signed_at,
            Student.full_name,
            Student.class_name,
        )
        .join(Student, Student.id == Handover.student_id)
        .where(Handover.school_id == school.id, Handover.status == HandoverStatus.ACTIVE)
        .order_by(Handover.handed_over_on.desc(), Handover.id.desc())
    ).all():
        handovers[h.id] = HandoverRow(
            h.id, h.full_name, h.class_name, h.handed_over_on, h.csdl_due_at, h.csdl_updated_at, h.minutes_signed_at
        )
        served[h.student_id] = h.handed_over_on
    for hid, pid in session.execute(
        select(HandoverPhoto.handover_id, HandoverPhoto.photo_id)
        .join(Handover, Handover.id == HandoverPhoto.handover_id)
        .where(Handover.school_id == school.id)
        .order_by(HandoverPhoto.id)
    ).all():
        if hid in handovers:
            handovers[hid].photo_ids.append(pid)
    for hid, kind in session.execute(
        select(Flag.handover_id, Flag.kind).where(Flag.school_id == school.id, Flag.resolved_at.is_(None))
    ).all():
        if hid in handovers and kind not in handovers[hid].flags:
            handovers[hid].flags.append(kind)

    pupils = [
        PupilRow(r.id, r.code, r.full_name, r.class_name, r.category, r.need, r.status, served.get(r.id))
        for r in session.execute(
            select(
                Student.id,
                Student.code,
                Student.full_name,
                Student.class_name,
                Student.category,
                Student.need,
                Student.status,
            )
            .where(Student.school_id == school.id)
            .order_by(Student.class_name, Student.full_name, Student.id)
        ).all()
    ]
    batches = [
        BatchRow(r.id, r.source, r.received_on, r.quantity, r.handed_over, r.device_type, r.brand_model)
        for r in session.execute(
            select(
                Batch.id,
                Batch.source,
                Batch.received_on,
                Batch.quantity,
                Batch.handed_over,
                Batch.device_type,
                Batch.brand_model,
            )
            .where(Batch.school_id == school.id)
            .order_by(Batch.received_on.desc(), Batch.id.desc())
        ).all()
    ]
    late = late_items(session, scope=one, programme=programme, now=now)
    return SchoolDetail(school, row, pupils, list(handovers.values()), batches, late)


def photo_in_scope(session: Session, *, scope: Scope, photo_id: int) -> Photo | None:
    """The photo, if it belongs to a handover of a school in ``scope``; else None."""
    found = session.execute(
        select(HandoverPhoto.photo_id)
        .join(Handover, Handover.id == HandoverPhoto.handover_id)
        .where(HandoverPhoto.photo_id == photo_id, scope.filter(Handover.school_id))
        .limit(1)
    ).first()
    return session.get(Photo, photo_id) if found else None
