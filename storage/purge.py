"""The retention purge (`fieldbot purge --before DATE`): pupil data kept no longer than its purpose needs.

For registrations and handovers recorded before ``before``:
- registrations lose the birth date, the hardship reason and the guardian's name and phone (``purged_at`` set);
- handovers lose their photos — scene photos and signed minutes: links, Photo rows no newer handover uses,
  the files and thumbnails — and minutes files under ``media/minutes`` named after the handover code;
- audit snapshots of those registrations lose the same fields;
- access-log rows older than ``before`` are removed (the only delete the access log allows).

Every row that is counted stays — students with their school, category, need and status, handovers with
their dates and devices — so every report adds up to the same totals before and after. A second run finds
nothing left to remove.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update
from sqlmodel import Session

from storage import access_log
from storage.models import AuditEvent, Handover, HandoverPhoto, Photo, Student

PURGED_FIELDS = ("birth_date", "hardship_reason", "guardian_name", "guardian_phone")


@dataclass
class PurgePlan:
    before: datetime
    students: list[int] = field(default_factory=list)  # registrations with something left to remove
    birth_dates: int = 0
    hardship_reasons: int = 0
    guardian_names: int = 0
    guardian_phones: int = 0
    handovers: list[int] = field(default_factory=list)  # handovers with photos left
    photo_links: int = 0
    photo_ids: list[int] = field(default_factory=list)  # Photo rows no remaining handover uses
    files: list[str] = field(default_factory=list)  # media-relative paths
    access_log_rows: int = 0

    @property
    def empty(self) -> bool:
        return not (self.students or self.handovers or self.photo_ids or self.access_log_rows or self.files)


def plan_purge(session: Session, *, before: datetime, media_dir: Path | None = None) -> PurgePlan:
    """What ``purge`` would remove; changes nothing."""
    if before.tzinfo is None:
        raise ValueError("before must be timezone-aware")
    p = PurgePlan(before=before)
    has_data = or_(*(getattr(Student, f).is_not(None) for f in PURGED_FIELDS))
    for sid, born, reason, gname, gphone in session.execute(
        select(
            Student.id, Student.birth_date, Student.hardship_reason, Student.guardian_name, Student.guardian_phone
        ).where(Student.created_at < before, has_data)
    ):
        p.students.append(sid)
        p.birth_dates += born is not None
        p.hardship_reasons += reason is not None
        p.guardian_names += gname is not None
        p.guardian_phones += gphone is not None
    old = select(Handover.id).where(Handover.created_at < before)
    links = session.execute(
        select(HandoverPhoto.handover_id, HandoverPhoto.photo_id).where(HandoverPhoto.handover_id.in_(old))
    ).all()
    p.handovers = sorted({h for h, _ in links})
    p.photo_links = len(links)
    linked = {ph for _, ph in links}
    if linked:
        kept = set(
            session.scalars(
                select(HandoverPhoto.photo_id).where(
                    HandoverPhoto.photo_id.in_(linked), HandoverPhoto.handover_id.not_in(old)
                )
            )
        )
        p.photo_ids = sorted(linked - kept)
        for path, thumb in session.execute(select(Photo.path, Photo.thumb_path).where(Photo.id.in_(p.photo_ids))):
            p.files += [path, thumb]
    if media_dir is not None:
        p.files += _minutes_files(session, Path(media_dir), before)
    p.access_log_rows = access_log.purge_before(session, before=before, dry_run=True)
    return p


def _minutes_files(session: Session, media_dir: Path, before: datetime) -> list[str]:
    """Minutes documents (``media/minutes/...BG000123...``) of handovers recorded before ``before``."""
    folder = media_dir / "minutes"
    if not folder.is_dir():
        return []
    codes = {f"BG{h:06d}" for h in session.scalars(select(Handover.id).where(Handover.created_at < before))}
    out = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if any(c in name for c in codes):
                out.append(os.path.relpath(os.path.join(dirpath, name), media_dir))
    return out


@dataclass
class PurgeReport:
    plan: PurgePlan
    files_removed: int = 0


def purge(
    session: Session, *, before: datetime, now: datetime, media_dir: Path | None, actor: str = "cli", dry_run: bool
) -> PurgeReport:
    """Remove what ``plan_purge`` lists (nothing with ``dry_run``). Rows change in the caller's transaction;
    files are deleted after the rows are flushed."""
    p = plan_purge(session, before=before, media_dir=media_dir)
    report = PurgeReport(plan=p)
    if dry_run or p.empty:
        return report
    for chunk in _chunks(p.students):
        session.execute(
            update(Student)
            .where(Student.id.in_(chunk))
            .values(**{f: None for f in PURGED_FIELDS}, purged_at=now)
            .execution_options(synchronize_session=False)
        )
        for event in session.scalars(
            select(AuditEvent).where(AuditEvent.entity == "student", AuditEvent.entity_id.in_(chunk))
        ):
            changed = False
            for side in ("before", "after"):
                snap = getattr(event, side)
                if isinstance(snap, dict) and any(snap.get(f) is not None for f in PURGED_FIELDS):
                    setattr(event, side, {k: (None if k in PURGED_FIELDS else v) for k, v in snap.items()})
                    changed = True
            if changed:
                session.add(event)
    if p.handovers:
        for chunk in _chunks(p.handovers):
            session.execute(delete(HandoverPhoto).where(HandoverPhoto.handover_id.in_(chunk)))
        for chunk in _chunks(p.photo_ids):
            session.execute(delete(Photo).where(Photo.id.in_(chunk)))
    access_log.purge_before(session, before=before)
    access_log.record_access(
        session,
        actor=actor,
        role="operator",
        what=access_log.PURGE,
        scope=f"before:{before.date().isoformat()}",
        pupils=len(p.students),
        now=now,
    )
    session.flush()
    if media_dir is not None:
        report.files_removed = _remove(Path(media_dir), p.files)
    return report


def _remove(media_dir: Path, rels: list[str]) -> int:
    from storage.photos import PhotoStore

    store = PhotoStore(media_dir)
    n = 0
    for rel in rels:
        try:
            store.open_path(rel).unlink()
            n += 1
        except (FileNotFoundError, ValueError):
            continue
    return n


def _chunks(ids: list[int], size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def count_photos(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Photo)) or 0)


def remove_old_exports(media_dir: Path, *, older_than: datetime) -> int:
    """Export files under ``media/exports`` last written before ``older_than`` (the daily job: the programme
    file's ``[privacy] export_keep_days``). Returns how many files were deleted."""
    folder = Path(media_dir) / "exports"
    if not folder.is_dir():
        return 0
    cutoff = older_than.timestamp()
    n = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                n += 1
        except FileNotFoundError:
            continue
    return n
