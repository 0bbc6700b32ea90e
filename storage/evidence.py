"""Photo evidence: attaching stored photos to a handover, finding reuse (same file or near-duplicate, per
database), raising flags, and removing files no record or open form holds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.clock import fmt_date
from core.vocabulary import FlagKind, HandoverStatus, PhotoKind
from storage.models import (
    Conversation,
    Flag,
    Handover,
    HandoverPhoto,
    Photo,
    School,
    Student,
)
from storage.photos import PhotoStore, StoredPhoto, hamming


@dataclass(frozen=True)
class _Linked:
    """Another active handover that used a photo (or a look-alike) of this one."""

    handover: Handover
    student_name: str
    school_name: str


def _about(other: _Linked, for_school_id: int) -> dict[str, object]:
    """The values of a reuse flag on a handover of ``for_school_id`` that points at ``other``: a principal
    sees pupil names of their own school only; another school's handover is named by its school."""
    own = other.handover.school_id == for_school_id
    return {
        "id": other.handover.id,
        "student": other.student_name if own else None,
        "school": other.school_name,
        "day": fmt_date(other.handover.handed_over_on),
    }


def attach_photos(
    session: Session,
    *,
    handover: Handover,
    photos: Sequence[tuple[StoredPhoto, PhotoKind]],
    by: int,
    now: datetime,
) -> list[tuple[Photo, PhotoKind]]:
    """Photo rows (the existing row when the image is already known) linked to the handover."""
    linked: list[tuple[Photo, PhotoKind]] = []
    seen: set[str] = set()
    for stored, kind in photos:
        if stored.sha256 in seen:
            continue  # the same picture sent twice in one handover is one piece of evidence
        seen.add(stored.sha256)
        photo = session.scalars(select(Photo).where(Photo.sha256 == stored.sha256)).first()
        if photo is None:
            photo = Photo(
                sha256=stored.sha256,
                dhash=stored.dhash,
                path=stored.path,
                thumb_path=stored.thumb_path,
                width=stored.width,
                height=stored.height,
                size_bytes=stored.size_bytes,
                captured_at=stored.captured_at,
                had_location=stored.had_location,
                uploaded_by=by,
                created_at=now,
            )
            session.add(photo)
            session.flush()
        session.add(HandoverPhoto(handover_id=handover.id, photo_id=photo.id, kind=PhotoKind(kind)))
        linked.append((photo, PhotoKind(kind)))
    session.flush()
    return linked


def _linked_handovers(session: Session, photo_ids: Iterable[int], *, exclude: int) -> dict[int, list[_Linked]]:
    """photo id -> other ACTIVE handovers using it (with student and school names for the flag text)."""
    ids = list(set(photo_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(HandoverPhoto.photo_id, Handover, Student.full_name, School.name)
        .join(Handover, Handover.id == HandoverPhoto.handover_id)
        .join(Student, Student.id == Handover.student_id)
        .join(School, School.id == Handover.school_id)
        .where(HandoverPhoto.photo_id.in_(ids), Handover.id != exclude, Handover.status == HandoverStatus.ACTIVE)
        .order_by(Handover.id)
    ).all()
    out: dict[int, list[_Linked]] = {}
    for photo_id, other, student_name, school_name in rows:
        out.setdefault(photo_id, []).append(_Linked(other, student_name, school_name))
    return out


def photos_near(session: Session, dhash: int, *, threshold: int, exclude_ids: Iterable[int] = ()) -> list[int]:
    """Ids of stored photos whose dHash is within ``threshold`` bits of ``dhash``.

    Hamming distance cannot use an index, so every (id, dhash) is compared, inside the database so no row
    crosses to Python: PostgreSQL (14+) with ``bit_count``, SQLite with a deterministic function registered
    on the connection. At 100,000 photos that is ~17 ms (PostgreSQL) / ~26 ms (SQLite) against ~180 ms for
    fetching the rows and comparing in Python.
    """
    skip = set(exclude_ids)
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= (14,):
        rows = (
            conn.exec_driver_sql(
                "SELECT id FROM photo WHERE bit_count(CAST(dhash # %(h)s AS bit(64))) <= %(t)s",
                {"h": dhash, "t": threshold},
            )
            .scalars()
            .all()
        )
    elif dialect.name == "sqlite":
        conn.connection.dbapi_connection.create_function("fieldbot_hamming64", 2, hamming, deterministic=True)
        rows = (
            conn.exec_driver_sql("SELECT id FROM photo WHERE fieldbot_hamming64(dhash, ?) <= ?", (dhash, threshold))
            .scalars()
            .all()
        )
    else:
        rows = [
            pid
            for pid, other in conn.exec_driver_sql("SELECT id, dhash FROM photo")
            if hamming(dhash, other) <= threshold
        ]
    return [pid for pid in rows if pid not in skip]


def reuse_flags(
    session: Session,
    *,
    handover: Handover,
    student: Student,
    linked: list[tuple[Photo, PhotoKind]],
    threshold: int,
    now: datetime,
) -> list[Flag]:
    own_ids = {p.id for p, _ in linked}
    exact = _linked_handovers(session, own_ids, exclude=handover.id)
    near_ids: dict[int, set[int]] = {}
    for photo, _ in linked:
        for pid in photos_near(session, photo.dhash, threshold=threshold, exclude_ids=own_ids):
            near_ids.setdefault(pid, set()).add(photo.id)
    near = _linked_handovers(session, near_ids, exclude=handover.id)

    me = _Linked(handover, student.full_name, session.get(School, handover.school_id).name)
    flags: list[Flag] = []
    flagged: set[int] = set()  # one flag per pair of handovers: the strongest reason wins
    for kind, groups in ((FlagKind.PHOTO_REUSED, exact), (FlagKind.PHOTO_NEAR_DUPLICATE, near)):
        for others in groups.values():
            for other in others:
                if other.handover.id in flagged:
                    continue
                flagged.add(other.handover.id)
                flags.append(
                    add_flag(
                        session,
                        handover=handover,
                        kind=kind,
                        related=other.handover.id,
                        now=now,
                        params=_about(other, handover.school_id),
                    )
                )
                flags.append(
                    add_flag(
                        session,
                        handover=other.handover,
                        kind=kind,
                        related=handover.id,
                        now=now,
                        params=_about(me, other.handover.school_id),
                    )
                )
    return flags


def add_flag(
    session: Session, *, handover: Handover, kind: FlagKind, params: dict, related: int | None, now: datetime
) -> Flag:
    flag = Flag(
        handover_id=handover.id,
        school_id=handover.school_id,
        kind=kind,
        params=params,
        related_handover_id=related,
        created_at=now,
    )
    session.add(flag)
    return flag


def discard_unreferenced(session: Session, *, store: PhotoStore, photos: Iterable[StoredPhoto]) -> int:
    """After a failed handover transaction: delete the files of photos no committed row references.

    ``session`` must be a fresh one (the failed one is rolled back). A file is kept when a Photo row with
    its sha256 exists, because an earlier (or concurrent, committed) handover uses the same image; the store
    itself keeps files it did not newly write. Returns how many photos were discarded.
    """
    photos = list({p.sha256: p for p in photos}.values())
    if not photos:
        return 0
    known = set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_([p.sha256 for p in photos]))))
    gone = 0
    for photo in photos:
        if photo.sha256 not in known and photo.is_new:
            store.discard(photo)
            gone += 1
    return gone


def discard_orphan_files(session: Session, *, store: PhotoStore, older_than: datetime) -> int:
    """Delete photo files that nothing uses: no Photo row and no form in progress names them.

    They come from handovers cancelled (/huy) after their photos were sent. Files modified after
    ``older_than`` are left alone, so a photo whose step has not committed yet is never taken from under it
    (the handover form touches a re-sent existing file for the same reason). Returns the number of photos
    removed (a photo and its thumbnail count once). Run it from a periodic sweep.
    """
    used = set(session.scalars(select(Photo.sha256)))
    for files in session.scalars(select(Conversation.files)):
        used.update(files or ())  # what open forms hold, as the engine recorded it
    cutoff = older_than.timestamp()
    removed: set[str] = set()
    for sub in ("photos", "thumbs"):
        for path in (store.media_dir / sub).glob("*/*.jpg"):
            sha = path.stem
            if sha in used:
                continue
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed.add(sha)
    return len(removed)


def stored_photo_to_dict(photo: StoredPhoto) -> dict[str, Any]:
    """A StoredPhoto as JSON-safe form state (the form remembers photos between messages)."""
    return {
        "sha256": photo.sha256,
        "dhash": photo.dhash,
        "path": photo.path,
        "thumb_path": photo.thumb_path,
        "width": photo.width,
        "height": photo.height,
        "size_bytes": photo.size_bytes,
        "captured_at": photo.captured_at.isoformat() if photo.captured_at else None,
        "had_location": photo.had_location,
        "is_new": photo.is_new,
    }


def stored_photo_from_dict(data: dict[str, Any]) -> StoredPhoto:
    captured = data.get("captured_at")
    return StoredPhoto(
        sha256=data["sha256"],
        dhash=int(data["dhash"]),
        path=data["path"],
        thumb_path=data["thumb_path"],
        width=int(data["width"]),
        height=int(data["height"]),
        size_bytes=int(data["size_bytes"]),
        captured_at=datetime.fromisoformat(captured) if captured else None,
        had_location=bool(data.get("had_location")),
        is_new=bool(data.get("is_new")),
    )
