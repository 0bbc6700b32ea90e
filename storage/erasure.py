"""Erasure on request: every trace of one pupil goes, nothing of any other pupil does.

Removed: the student row, its handovers, their photo links and the photos no other handover uses (rows and
files, thumbnails included), their flags, the audit events of the pupil and of the handovers, notifications
(queued or sent) whose text names the pupil or the code, forms in progress about the pupil, files under the
media folder named after the pupil's code or a handover code (minutes), and the export files under
``media/exports`` (derived copies that may list the pupil; they are re-made on request).

Kept: the batch's ``handed_over`` counter and counts already reported (a submitted needs report keeps its
figures in its audit event; digests already sent stay sent). Another pupil's flag that pointed at an erased
handover keeps its flag with the reference and the erased pupil's name removed. The access log gets one row:
who, when, ``student:<code>`` — that an erasure happened, not the data.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlmodel import Session

from core.messages import esc
from core.vocabulary import Role
from storage import access_log
from storage.errors import RecordError
from storage.models import (
    AuditEvent,
    Conversation,
    Flag,
    Handover,
    HandoverPhoto,
    Notification,
    Photo,
    School,
    Student,
)

ERASED_NOTE = "(học sinh liên quan đã được xóa theo yêu cầu)"


class ErasureError(RecordError):
    """The pupil to erase is not there (any more): ``erase_missing``, worded in conversations/refusals.py."""


@dataclass
class ErasurePlan:
    student_id: int
    code: str
    full_name: str
    class_name: str
    school_name: str
    handover_ids: list[int] = field(default_factory=list)
    photo_ids: list[int] = field(default_factory=list)  # Photo rows used by no other handover
    files: list[str] = field(default_factory=list)  # media-relative paths to delete


@dataclass
class ErasureReport:
    code: str
    handovers: int = 0
    photos: int = 0
    files: int = 0
    notifications: int = 0
    conversations: int = 0
    audit_events: int = 0
    flags_rewritten: int = 0


def find_student(session: Session, *, actor, code: str) -> Student | None:
    """The pupil with ``code`` if ``actor`` may erase it: a district officer in their district, a principal in
    their school, the operator (``actor`` a string) anywhere. Same answer (None) for "elsewhere" and "absent"."""
    student = session.scalar(select(Student).where(Student.code == code.strip()))
    if student is None:
        return None
    if isinstance(actor, str):
        return student
    school = session.get(School, student.school_id)
    if school is None:
        return None
    if actor.role == Role.DISTRICT_OFFICER and school.district_id == actor.district_id:
        return student
    if actor.role == Role.PRINCIPAL and actor.school_id == student.school_id:
        return student
    return None


def plan(session: Session, *, student: Student) -> ErasurePlan:
    school = session.get(School, student.school_id)
    p = ErasurePlan(
        student_id=student.id,
        code=student.code,
        full_name=student.full_name,
        class_name=student.class_name,
        school_name=school.name if school else "",
    )
    p.handover_ids = list(session.scalars(select(Handover.id).where(Handover.student_id == student.id)))
    if p.handover_ids:
        linked = set(
            session.scalars(select(HandoverPhoto.photo_id).where(HandoverPhoto.handover_id.in_(p.handover_ids)))
        )
        shared = set(
            session.scalars(
                select(HandoverPhoto.photo_id).where(
                    HandoverPhoto.photo_id.in_(linked), HandoverPhoto.handover_id.not_in(p.handover_ids)
                )
            )
        )
        p.photo_ids = sorted(linked - shared)
        for path, thumb in session.execute(select(Photo.path, Photo.thumb_path).where(Photo.id.in_(p.photo_ids))):
            p.files += [path, thumb]
    return p


_NEXT_NAME_WORD = re.compile(r"\s+(\w)")
_PREV_NAME_WORD = re.compile(r"(\w)\w*\s+$")


def _mentions(value: object, needles: tuple[str, ...]) -> bool:
    """The name or the code as a whole: "Nguyễn Thị Ánh" is not in "Nguyễn Thị Ánhh" nor in "Nguyễn Thị Ánh
    Hồng" (names are title-cased, so a capitalised word right before or after makes it another name)."""
    if value is None:
        return False
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    for needle in needles:
        if not needle:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", text):
            after = _NEXT_NAME_WORD.match(text, m.end())
            before = _PREV_NAME_WORD.search(text[max(0, m.start() - 40) : m.start()])
            if needle[:1].isdigit() or not (
                (after and after.group(1).isupper()) or (before and before.group(1).isupper())
            ):
                return True
    return False


def erase(
    session: Session, *, actor, role: str, student_id: int, now: datetime, media_dir: Path | None
) -> ErasureReport:
    """Erase one pupil (the caller has checked the actor with ``find_student`` and asked for confirmation).
    Database rows go in the caller's transaction; files are deleted at the end (after the rows are flushed)."""
    student = session.get(Student, student_id)
    if student is None:
        raise ErasureError("erase_missing")
    p = plan(session, student=student)
    report = ErasureReport(code=p.code, handovers=len(p.handover_ids), photos=len(p.photo_ids))
    needles = tuple({p.full_name, esc(p.full_name), p.code})
    hids = p.handover_ids

    # Flags: this pupil's own go; another pupil's flag that points here ("the same photo as em X's handover")
    # keeps the flag, without the pointer and the name.
    if hids:
        session.execute(delete(Flag).where(Flag.handover_id.in_(hids)))
        for flag in session.scalars(select(Flag).where(Flag.related_handover_id.in_(hids))).all():
            flag.related_handover_id = None
            flag.params = {"text": ERASED_NOTE}  # core.vocabulary.flag_text shows a "text" as is
            report.flags_rewritten += 1
        session.flush()

    # Audit events of the pupil and of the handovers (no other entity's snapshot carries a pupil's data).
    ids = list(
        session.scalars(
            select(AuditEvent.id).where(
                or_(
                    (AuditEvent.entity == "student") & (AuditEvent.entity_id == student.id),
                    (AuditEvent.entity == "handover") & (AuditEvent.entity_id.in_(hids or [-1])),
                )
            )
        )
    )
    if ids:
        session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
    report.audit_events = len(ids)

    # Notifications naming the pupil (the outbox keeps sent ones too): queued ones are never sent now.
    candidates = session.execute(
        select(Notification.id, Notification.text).where(or_(*(Notification.text.contains(n) for n in needles)))
    ).all()
    gone = [nid for nid, text in candidates if _mentions(text, needles)]
    if gone:
        session.execute(delete(Notification).where(Notification.id.in_(gone)))
    report.notifications = len(gone)

    # Forms in progress about the pupil (a correction open in /cuatoi, a handover being recorded).
    for conv in session.scalars(select(Conversation)).all():
        data = conv.data or {}
        refs = {data.get("student"), data.get("student_id")}
        if student.id in refs or str(student.id) in refs or _mentions(data, needles):
            session.delete(conv)
            report.conversations += 1

    if hids:
        session.execute(delete(HandoverPhoto).where(HandoverPhoto.handover_id.in_(hids)))
        if p.photo_ids:
            session.execute(delete(Photo).where(Photo.id.in_(p.photo_ids)))
        session.execute(delete(Handover).where(Handover.id.in_(hids)))
    session.execute(delete(Student).where(Student.id == student.id))
    access_log.record_access(
        session,
        actor=actor,
        role=role,
        what=access_log.ERASE,
        scope=f"student:{p.code}",
        pupils=1,
        now=now,
        school_id=student.school_id,
        district_id=_district_of(session, student.school_id),
    )
    session.flush()
    if media_dir is not None:
        report.files = remove_files(Path(media_dir), p)
    return report


def _district_of(session: Session, school_id: int) -> int | None:
    school = session.get(School, school_id)
    return school.district_id if school else None


def handover_code(handover_id: int) -> str:
    """The handover's printed code (as reports.export names it); storage cannot import reports."""
    return f"BG{handover_id:06d}"


def _safe_unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def remove_files(media_dir: Path, p: ErasurePlan) -> int:
    """Photo and thumbnail files of the erased photos, files named after the code or a handover code (minutes,
    derived copies) and every export file. Returns how many files were deleted."""
    from storage.photos import PhotoStore

    store = PhotoStore(media_dir)
    removed = 0
    for rel in p.files:
        try:
            removed += _safe_unlink(store.open_path(rel))
        except ValueError:
            continue
    names = (p.code, *(handover_code(h) for h in p.handover_ids))
    root = media_dir.resolve()
    if not root.is_dir():
        return removed
    for dirpath, _dirs, files in os.walk(root):
        here = Path(dirpath)
        in_exports = here == root / "exports" or (root / "exports") in here.parents
        for name in files:
            if in_exports or any(n in name for n in names):
                removed += _safe_unlink(here / name)
    return removed
