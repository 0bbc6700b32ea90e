"""The media disk full or read-only under /bangiao: a clear message, the question again, no handover."""

from __future__ import annotations

import errno

from sqlalchemy import select
from sqlmodel import Session

from storage.models import Handover
from tests.photo_factory import phone_jpeg
from tests.test_forms_handover import eng, seeded, store, teacher  # noqa: F401  (fixtures)


async def _to_photo_step(teacher) -> None:
    await teacher.say("/bangiao")
    await teacher.say("an")
    await teacher.tap("Nguyễn Văn An")
    await teacher.tap("HP")
    await teacher.tap("Hôm nay")


async def test_media_disk_full_is_explained_and_nothing_half_saved(
    teacher, seeded, store, sqlite_engine, monkeypatch
) -> None:
    await _to_photo_step(teacher)
    import storage.photos as photos_module

    real_replace = photos_module.os.replace

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(photos_module.os, "replace", full)
    await teacher.photo(phone_jpeg(8))
    assert "Không lưu được ảnh" in teacher.text and "ảnh" in teacher.text.lower()
    monkeypatch.setattr(photos_module.os, "replace", real_replace)
    await teacher.photo(phone_jpeg(8))  # space freed: the same photo goes through
    assert "Đã nhận 1 ảnh" in teacher.text
    with Session(sqlite_engine) as s:
        assert s.scalars(select(Handover)).all() == []
    leftovers = [p for p in store.media_dir.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
