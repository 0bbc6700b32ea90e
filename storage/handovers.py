"""Handovers: one computer to one pupil, with photo evidence, and the sector-database confirmation.

Rules are checked here, not only in the forms, because the same records come from other doors (imports,
corrections) and the database must never hold a handover the rules forbid. Never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.programme import Programme
from core.text import fold
from core.vocabulary import FlagKind, HandoverStatus, PhotoKind, ReviewStatus
from storage.access import audit_write, check_not_future, require_principal, require_school_staff
from storage.errors import (
    Conflict,
    NotAllowed,
    RecordError,
)
from storage.evidence import add_flag, attach_photos, reuse_flags
from storage.models import (
    Batch,
    Device,
    Flag,
    Handover,
    Student,
)
from storage.photos import StoredPhoto, capture_time_flag
from storage.receipts import batch_has_serials

# --- students waiting for a computer ----------------------------------------------------------------------


def _active_handover_of(session: Session, student_id: int) -> Handover | None:
    return session.scalars(
        select(Handover).where(Handover.student_id == student_id, Handover.status == HandoverStatus.ACTIVE)
    ).first()


def students_to_serve(session: Session, *, school_id: int, query: str = "", limit: int = 8) -> list[Student]:
    """Approved students of the school without an active handover whose name (accents optional) has a word
    starting with each typed word, or whose code starts with the typed digits. A school has at most a few hundred
    students in need, so matching happens in Python, where accent folding works the same on both databases."""
    served = select(Handover.student_id).where(Handover.status == HandoverStatus.ACTIVE)
    students = session.scalars(
        select(Student).where(
            Student.school_id == school_id, Student.status == ReviewStatus.APPROVED, Student.id.not_in(served)
        )
    ).all()
    # Sorted here, not in SQL: database collations disagree on "Đ" (SQLite puts it after "Z").
    students = sorted(students, key=lambda st: (fold(st.full_name), st.id))
    q = query.strip()
    if q.isdigit():
        return [s for s in students if s.code.startswith(q)][:limit]
    words = fold(q).split()

    def matches(name: str) -> bool:  # every typed word starts a word of the name: "an" finds An, not Văn
        parts = fold(name).split()
        return all(any(p.startswith(w) for p in parts) for w in words)

    return [s for s in students if matches(s.full_name)][:limit]


# --- handovers --------------------------------------------------------------------------------------------


def record_handover(
    session: Session,
    *,
    student_id: int,
    batch_id: int,
    serial: str | None,
    handed_over_on: date,
    by: int,
    photos: Sequence[tuple[StoredPhoto, PhotoKind]],
    programme: Programme,
    now: datetime,
) -> tuple[Handover, list[Flag]]:
    """One computer to one student, with its photos, in the caller's transaction.

    Returns the handover and every flag created: those of the new handover and those added to the earlier
    handovers whose photos were reused (possibly of another school: notify that school's principal too).
    The photo files must already be in the store; if the caller's transaction fails, it calls
    ``discard_unreferenced`` so no file outlives its failed handover.
    """
    # Lock the student (PostgreSQL; SQLite has one writer anyway) so two people recording the same child at
    # the same moment cannot both pass the "not yet served" check.
    student = session.scalars(select(Student).where(Student.id == student_id).with_for_update()).first()
    if student is None:
        raise RecordError("student_missing")
    require_school_staff(session, staff_id=by, school_id=student.school_id)
    if student.status != ReviewStatus.APPROVED:
        raise RecordError("not_approved", name=student.full_name)
    served = _active_handover_of(session, student.id)
    if served is not None:
        raise RecordError("served", name=student.full_name, id=served.id, day=served.handed_over_on)
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise RecordError("batch_missing")
    if batch.school_id != student.school_id:
        raise NotAllowed("batch_other_school", name=student.full_name)
    if batch.handed_over >= batch.quantity:
        raise RecordError("batch_empty", day=batch.received_on, quantity=batch.quantity)

    device_id: int | None = None
    if batch_has_serials(session, batch_id=batch.id):
        if not serial:
            raise RecordError("serial_needed")
        serial = serial.strip().upper()
        # Lock the machine's row first (PostgreSQL): a concurrent handover of the same serial waits here, and
        # the check below, a new statement, then sees its commit and refuses with a precise reason.
        device_id = session.scalar(
            select(Device.id).where(Device.batch_id == batch.id, Device.serial == serial).with_for_update()
        )
        held = device_id is not None and session.scalar(select(exists().where(Handover.device_id == device_id)))
        if device_id is None or held:
            raise RecordError("serial_not_free", serial=serial)
    elif serial:
        raise RecordError("serial_not_in_batch")

    check_not_future(handed_over_on, now=now, tz=programme.tz)
    if handed_over_on < batch.received_on:
        raise RecordError("before_receipt", day=handed_over_on, received=batch.received_on)
    if not any(kind == PhotoKind.SCENE for _, kind in photos):
        raise RecordError("no_photo")

    # The counter moves only while devices are left, in one statement: two handovers racing for the last
    # computer cannot both succeed, whatever they read before.
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.handed_over < Batch.quantity)
        .values(handed_over=Batch.handed_over + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise RecordError("batch_empty", day=batch.received_on, quantity=batch.quantity)
    session.refresh(batch)

    handover = Handover(
        student_id=student.id,
        batch_id=batch.id,
        device_id=device_id,
        school_id=student.school_id,
        handed_over_on=handed_over_on,
        recorded_by=by,
        status=HandoverStatus.ACTIVE,
        csdl_due_at=programme.handover_update_due(handed_over_on),
        created_at=now,
        updated_at=now,
    )
    session.add(handover)
    try:
        session.flush()
        # Unique keys that a concurrent writer can beat us to: handover.device_id, photo.sha256.
        linked_photos = attach_photos(session, handover=handover, photos=photos, by=by, now=now)
    except IntegrityError:
        raise Conflict("conflict") from None
    flags = reuse_flags(
        session,
        handover=handover,
        student=student,
        linked=linked_photos,
        threshold=programme.photos.near_duplicate_bits,
        now=now,
    )
    for photo, _kind in linked_photos:
        reason = capture_time_flag(
            photo.captured_at, handed_over_on, max_days_before=programme.photos.capture_max_days_before
        )
        if reason:
            flags.append(
                add_flag(session, handover=handover, kind=FlagKind.CAPTURE_TIME, params=reason, related=None, now=now)
            )
    session.flush()
    audit_write(
        session,
        actor_id=by,
        action="create",
        entity="handover",
        entity_id=handover.id,
        before=None,
        after={
            "student_id": student.id,
            "batch_id": batch.id,
            "serial": serial if device_id else None,
            "handed_over_on": handed_over_on.isoformat(),
            "photos": [p.sha256 for p, _ in linked_photos],
            "flags": [f.kind for f in flags],
        },
        now=now,
    )
    return handover, flags


# --- the sector-database confirmation ---------------------------------------------------------------------


def handovers_awaiting_csdl(session: Session, *, school_id: int) -> list[Handover]:
    """Active handovers of the school not yet confirmed in the sector database, the most urgent first."""
    return list(
        session.scalars(
            select(Handover)
            .where(
                Handover.school_id == school_id,
                Handover.status == HandoverStatus.ACTIVE,
                Handover.csdl_updated_at.is_(None),
            )
            .order_by(Handover.csdl_due_at, Handover.id)
        )
    )


def confirm_csdl(session: Session, *, handover_ids: Sequence[int], by: int, school_id: int, now: datetime) -> int:
    """The principal confirms these handovers are entered in the sector database ("Đã cập nhật CSDL ngành").

    Only the school's own, active, unconfirmed handovers change (a stale tap or another school's id is
    ignored, not an error); each change is audited. Returns how many were confirmed.
    """
    require_principal(
        session,
        staff_id=by,
        school_id=school_id,
        action="confirm_csdl",
    )
    ids = sorted(set(handover_ids))
    if not ids:
        return 0
    targets = session.scalars(
        select(Handover)
        .where(
            Handover.id.in_(ids),
            Handover.school_id == school_id,
            Handover.status == HandoverStatus.ACTIVE,
            Handover.csdl_updated_at.is_(None),
        )
        .with_for_update()
    ).all()
    for handover in targets:
        handover.csdl_updated_at = now
        handover.csdl_confirmed_by = by
        handover.updated_at = now
        audit_write(
            session,
            actor_id=by,
            action="confirm_csdl",
            entity="handover",
            entity_id=handover.id,
            before={"csdl_updated_at": None},
            after={"csdl_updated_at": now.isoformat()},
            now=now,
        )
    session.flush()
    return len(targets)


def open_flags(session: Session, *, school_id: int) -> list[Flag]:
    return list(
        session.scalars(
            select(Flag)
            .where(Flag.school_id == school_id, Flag.resolved_at.is_(None))
            .order_by(Flag.created_at, Flag.id)
        )
    )
