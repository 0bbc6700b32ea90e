"""The scheduler removes photo files nobody uses (a handover cancelled after its photos came), once a day
old, and never a file a record or a form in progress names."""

from __future__ import annotations

import os
from datetime import timedelta

from scheduler.service import SchedulerService
from storage.photos import PhotoStore
from tests.engine_helpers import Chat, make_engine
from tests.photo_factory import phone_jpeg


async def test_orphan_photo_files_are_cleaned_up(sqlite_engine, sqlite_world, programme, clock, tmp_path) -> None:
    store = PhotoStore(tmp_path / "media")
    orphan = store.ingest(phone_jpeg(1))
    kept_by_form = store.ingest(phone_jpeg(2))
    eng = make_engine(sqlite_engine, programme, clock, photos=store, media_dir=store.media_dir)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    from conversations.state import save_conversation

    with sqlite_engine.begin() as conn:  # a form in progress that still holds the second photo
        save_conversation(
            conn,
            staff_id=sqlite_world.teacher_a,
            channel="telegram",
            chat_id=teacher.chat_id,
            form="bangiao",
            step="photos",
            data={"photos": [{"sha256": kept_by_form.sha256}]},
            now=clock.now(),
        )
    old = (clock.now() - timedelta(days=2)).timestamp()
    for p in (orphan.path, orphan.thumb_path, kept_by_form.path, kept_by_form.thumb_path):
        os.utime(store.media_dir / p, (old, old))
    service = SchedulerService(
        db=sqlite_engine, programme=programme, clock=clock, senders={}, mailer=None, holder="test", photos=store
    )
    assert await service.clean_photo_files() == 1
    assert not (store.media_dir / orphan.path).exists() and not (store.media_dir / orphan.thumb_path).exists()
    assert (store.media_dir / kept_by_form.path).exists()
