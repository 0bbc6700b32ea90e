"""The photo store: handover evidence on disk, content-addressed, EXIF-free, written atomically.

Database-free on purpose. The handover form calls, in this order::

    photo = store.ingest(data)            # PhotoRejected -> tell the teacher; PhotoStoreError -> retry later
    try:
        ...insert Photo row (or reuse the row with the same sha256), commit...
    except Exception:
        store.discard(photo)              # no orphan file for a handover that never existed
        raise

File names come only from the SHA-256 of the normalised JPEG, never from the uploader's file name.
Reuse checks (``hamming``, ``is_near_duplicate``) and the capture-date check (``capture_time_flag``) are
plain functions over the columns kept in the database.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar

from storage.errors import RecordError
from storage.imaging import LOCAL_TZ, PhotoRejected, normalise, sniff_format

__all__ = [
    "PhotoRejected",
    "PhotoStoreError",
    "StoredPhoto",
    "PhotoStore",
    "hamming",
    "is_near_duplicate",
    "near_duplicates",
    "capture_time_flag",
    "sniff_format",
    "NEAR_DUPLICATE_THRESHOLD",
]

log = logging.getLogger(__name__)

# Measured on 60 generated scenes: re-compression and resizing move 0-4 bits; a crop of 2.5% off every edge
# 1-10; 5% off every edge 4-17 (80% within 12); two different scenes 17-50 (1,770 pairs). One 64-bit dHash
# cannot tell a large crop from a different photo of the same kind of scene: 12 catches small crops and
# keeps a margin of 5 bits below the closest pair of different scenes.
NEAR_DUPLICATE_THRESHOLD = 12
_MASK64 = (1 << 64) - 1
_FILE_MODE = 0o640  # children's photos: owner and group (the web server) only


class PhotoStoreError(RecordError):
    """The server could not store a valid photo (disk full, read-only media dir...). Not the teacher's fault:
    ``photo_storage``, worded in ``conversations/refusals.py``; the cause is logged, never shown."""

    def __init__(self, cause: str = "") -> None:
        super().__init__("photo_storage")
        self.cause = cause

    def __str__(self) -> str:
        return f"photo_storage: {self.cause}" if self.cause else "photo_storage"


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str  # of the normalised JPEG bytes (the content address)
    dhash: int  # 64-bit difference hash, signed int64 for a BIGINT column
    path: str  # relative to media_dir: "photos/ab/<sha256>.jpg"
    thumb_path: str  # relative to media_dir: "thumbs/ab/<sha256>.jpg"
    width: int
    height: int
    size_bytes: int
    captured_at: datetime | None  # EXIF DateTimeOriginal, aware UTC
    had_location: bool  # the original EXIF had GPS data (the stored file never has)
    # True when this ingest wrote the photo file; discard() only removes files it created, so a failed
    # transaction can never delete a file that an earlier handover still uses. Not part of equality.
    is_new: bool = field(default=False, compare=False)


class PhotoStore:
    def __init__(
        self,
        media_dir: Path,
        *,
        max_side: int = 1600,
        thumb_side: int = 320,
        quality: int = 85,
        max_bytes: int = 20 * 1024 * 1024,
        max_pixels: int = 50_000_000,
        min_side: int = 64,
    ) -> None:
        self.media_dir = Path(media_dir)
        self.max_side = max_side
        self.thumb_side = thumb_side
        self.quality = quality
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.min_side = min_side

    def ingest(self, data: bytes, *, mime_type: str | None = None, file_name: str | None = None) -> StoredPhoto:
        """Validate, normalise and store one upload; the same image twice is stored once.

        ``mime_type`` and ``file_name`` are client claims, logged only: the format comes from the bytes and
        the file name from the hash.
        """
        log.debug("photo upload: %d bytes, claimed %r / %r", len(data), mime_type, file_name)
        n = normalise(
            data,
            max_side=self.max_side,
            thumb_side=self.thumb_side,
            quality=self.quality,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            min_side=self.min_side,
        )
        shard = n.sha256[:2]
        rel, thumb_rel = f"photos/{shard}/{n.sha256}.jpg", f"thumbs/{shard}/{n.sha256}.jpg"
        photo_abs, thumb_abs = self.media_dir / rel, self.media_dir / thumb_rel
        created: list[Path] = []
        try:
            if not _has_file(photo_abs, len(n.jpeg)):
                _write_atomic(photo_abs, n.jpeg)
                created.append(photo_abs)
            if not _has_file(thumb_abs, len(n.thumb)):
                _write_atomic(thumb_abs, n.thumb)
                created.append(thumb_abs)
        except OSError as exc:
            # All or nothing: a photo without its thumbnail is removed again (only what this call wrote).
            for path in created:
                _unlink_quiet(path)
            log.error("photo store write failed under %s: %s", self.media_dir, exc)
            raise PhotoStoreError(str(exc)) from exc
        return StoredPhoto(
            sha256=n.sha256,
            dhash=n.dhash,
            path=rel,
            thumb_path=thumb_rel,
            width=n.width,
            height=n.height,
            size_bytes=len(n.jpeg),
            captured_at=n.captured_at,
            had_location=n.had_location,
            is_new=photo_abs in created,
        )

    def discard(self, photo: StoredPhoto) -> None:
        """Remove the files of a photo whose database transaction failed. Safe if they are already gone.

        Does nothing for a photo this store did not newly write (``is_new`` False): that file belongs to an
        earlier, committed handover. Caveat: two concurrent ingests of the same image both see the other's
        file; the caller should skip discard when a committed row with this sha256 exists.
        """
        if not photo.is_new:
            return
        for rel in (photo.path, photo.thumb_path):
            _unlink_quiet(self.open_path(rel))

    def open_path(self, rel: str) -> Path:
        """Absolute path of a stored file; refuses anything that would leave media_dir (``..``, absolute,
        symlinks pointing out)."""
        if not rel or "\x00" in rel or "\\" in rel:
            raise ValueError(f"unsafe media path: {rel!r}")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise ValueError(f"unsafe media path: {rel!r}")
        root = self.media_dir.resolve()
        full = (root / pure).resolve()
        if not full.is_relative_to(root) or full == root:
            raise ValueError(f"unsafe media path: {rel!r}")
        return full


# --- files -----------------------------------------------------------------------------------------------


def _has_file(path: Path, size: int) -> bool:
    # Same content address and same length: the same bytes (atomic writes never leave a partial file).
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory: the file is either
    complete and durable or absent, so a database row committed afterwards never points at half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), _FILE_MODE)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(Path(tmp))
        raise
    try:
        _fsync_dir(path.parent)
    except BaseException:
        _unlink_quiet(path)  # renamed but not durable: do not report success
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # cleanup must not hide the original error
        log.warning("could not remove %s: %s", path, exc)


# --- reuse and plausibility --------------------------------------------------------------------------------


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK64).bit_count()


def is_near_duplicate(a: int, b: int, *, threshold: int = NEAR_DUPLICATE_THRESHOLD) -> bool:
    return hamming(a, b) <= threshold


K = TypeVar("K")


def near_duplicates(
    dhash: int, candidates: Iterable[tuple[K, int]], *, threshold: int = NEAR_DUPLICATE_THRESHOLD
) -> Iterator[tuple[K, int]]:
    """(key, distance) for every candidate (key, dhash) within ``threshold``. SQL cannot index Hamming
    distance; a district's photos are a few thousand 8-byte ints, so compare in Python."""
    for key, other in candidates:
        d = hamming(dhash, other)
        if d <= threshold:
            yield key, d


def capture_time_flag(
    captured_at: datetime | None, handover_day: date, *, max_days_before: int = 7
) -> dict[str, object] | None:
    """The values of a capture-time flag (``core.vocabulary.flag_text`` words them) when the photo's capture
    date is implausible for this handover, or None.

    Dates are compared as Vietnamese calendar days. Unknown capture time (no EXIF, Telegram-compressed
    photo) is not suspicious by itself. A naive datetime is taken as local wall time.
    """
    if captured_at is None:
        return None
    if captured_at.tzinfo is None:
        captured_at = captured_at.replace(tzinfo=LOCAL_TZ)
    day = captured_at.astimezone(LOCAL_TZ).date()
    shot, handed = f"{day:%d/%m/%Y}", f"{handover_day:%d/%m/%Y}"
    if day > handover_day:
        return {"after": True, "shot": shot, "handed": handed}
    gap = (handover_day - day).days
    if gap > max_days_before:
        return {"after": False, "shot": shot, "handed": handed, "gap": gap, "max": max_days_before}
    return None
