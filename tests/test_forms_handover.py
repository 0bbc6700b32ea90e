"""/bangiao end to end through the engine: search, batch, serial, date, photos, flags, notifications, roles,
bad inputs, restart, and no orphan photo files."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from conversations import state as state_module
from core.vocabulary import DeviceType, ReviewStatus, Source
from storage import evidence, receipts
from storage.db import session_scope
from storage.models import Flag, Handover, HandoverPhoto, Photo, Student
from storage.photos import PhotoStore
from tests.engine_helpers import Chat, fill, make_engine
from tests.photo_factory import minimal_pdf, phone_jpeg

RECEIVED = date(2021, 11, 15)


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, store):
    return make_engine(sqlite_engine, programme, clock, photos=store, media_dir=store.media_dir)


@pytest.fixture
def seeded(sqlite_engine, sqlite_world, clock):
    """Approved students and batches in both schools of Thủ Dầu Một."""
    now = clock.now()
    ids: dict[str, int] = {}
    with session_scope(sqlite_engine) as s:
        for key, name, code, school, status in (
            ("an", "Nguyễn Văn An", "0100000001", sqlite_world.school_a, ReviewStatus.APPROVED),
            ("anh", "Trần Thị Ánh", "0100000002", sqlite_world.school_a, ReviewStatus.APPROVED),
            ("binh", "Lê Văn Bình", "0100000003", sqlite_world.school_a, ReviewStatus.APPROVED),
            ("pending", "Phạm Văn Chờ", "0100000004", sqlite_world.school_a, ReviewStatus.PENDING),
            ("b_an", "Đỗ Văn An", "0200000001", sqlite_world.school_b, ReviewStatus.APPROVED),
        ):
            st = Student(
                school_id=school,
                code=code,
                full_name=name,
                birth_date=date(2011, 1, 2),
                gender="male",
                class_name="5A1",
                category="poor",
                need="device",
                status=status,
                registered_by=sqlite_world.teacher_a,
                created_at=now,
                updated_at=now,
            )
            s.add(st)
            s.flush()
            ids[key] = st.id
        for key, school, by, quantity, serials, model in (
            (
                "dell",
                sqlite_world.school_a,
                sqlite_world.principal_a,
                3,
                ["DL-1", "DL-2", "DL-3"],
                "Dell Latitude 3420",
            ),
            ("hp", sqlite_world.school_a, sqlite_world.principal_a, 20, [], "HP ProBook 440"),
            ("b", sqlite_world.school_b, sqlite_world.principal_b, 2, [], "Asus VivoBook"),
        ):
            batch = receipts.record_batch(
                s,
                school_id=school,
                by=by,
                source=Source.PROGRAMME,
                sponsor_id=None,
                received_on=RECEIVED,
                quantity=quantity,
                device_type=DeviceType.LAPTOP,
                brand_model=model,
                condition="Mới",
                serials=serials,
                now=now,
            )
            ids[key] = batch.id
    return ids


@pytest.fixture
async def teacher(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["teacher_a"])


@pytest.fixture
async def principal(eng, sqlite_world):
    return await Chat.linked(eng, sqlite_world.phones["principal_a"])


def _files(store: PhotoStore) -> set[str]:
    return {str(p.relative_to(store.media_dir)) for p in store.media_dir.rglob("*.jpg")}


def _handovers(db) -> list[Handover]:
    with Session(db) as s:
        return list(s.scalars(select(Handover).order_by(Handover.id)))


async def _to_photos(chat: Chat, student: str = "Nguyễn Văn An", batch: str = "HP ProBook") -> None:
    await chat.say("/bangiao")
    await chat.say(student.split()[-1])
    await chat.tap(student)
    await chat.tap(batch)
    await chat.tap("Hôm nay")
    assert "Gửi ảnh chụp buổi bàn giao" in chat.text


async def test_bangiao_with_serial_photos_and_minutes(teacher, principal, seeded, sqlite_engine, store) -> None:
    await teacher.say("/bangiao")
    assert "Gõ một phần họ tên" in teacher.text
    await teacher.say("an")  # matches An and Ánh (accents optional), not the pending or school B students
    assert teacher.labels[:2] == ["Nguyễn Văn An — 5A1 — 0100000001", "Trần Thị Ánh — 5A1 — 0100000002"]
    assert not teacher.has_option("Chờ") and not teacher.has_option("Đỗ Văn An")
    await teacher.tap("Nguyễn Văn An")
    assert teacher.labels[:2] == [
        "Lô 15/11/2021 — Dell Latitude 3420 (còn 3/3)",
        "Lô 15/11/2021 — HP ProBook 440 (còn 20/20)",
    ]
    assert not teacher.has_option("Asus")
    await teacher.tap("Dell")
    assert teacher.labels[:3] == ["DL-1", "DL-2", "DL-3"]
    await teacher.tap("DL-2")
    await teacher.tap("Hôm nay")
    await teacher.photo(phone_jpeg(1, taken=datetime(2021, 11, 17, 7, 45)))
    assert "Đã nhận 1 ảnh" in teacher.text and teacher.has_option("Xong")
    await teacher.photo(phone_jpeg(2, (600, 800)))
    assert "Đã nhận 2 ảnh" in teacher.text
    await teacher.tap("Xong")
    assert "biên bản" in teacher.text
    await teacher.photo(phone_jpeg(3))  # one page of minutes: taken at once, straight to the summary
    for shown in ("Nguyễn Văn An", "Dell Latitude 3420", "DL-2", "17/11/2021", "2 ảnh", "1 ảnh"):
        assert shown in teacher.text
    await teacher.tap("Lưu")
    assert "Đã ghi nhận bàn giao #1" in teacher.text and "(sê-ri DL-2)" in teacher.text
    assert "chậm nhất trong ngày 18/11/2021" in teacher.text and "xem lại" not in teacher.text
    assert teacher.notifications == []  # nothing flagged: the principal is not disturbed
    [h] = _handovers(sqlite_engine)
    with Session(sqlite_engine) as s:
        kinds = sorted(k for (k,) in s.execute(select(HandoverPhoto.kind).where(HandoverPhoto.handover_id == h.id)))
        assert kinds == ["minutes", "scene", "scene"]
        assert receipts.free_serials(s, batch_id=seeded["dell"]) == ["DL-1", "DL-3"]
    assert len(_files(store)) == 6  # three photos and their thumbnails, nothing else
    await teacher.say("/bangiao")
    await teacher.say("0100000001")  # served now: no longer offered
    assert "Không tìm thấy học sinh" in teacher.text


async def test_bangiao_bad_inputs_get_a_second_chance(teacher, seeded, sqlite_engine, store) -> None:
    await teacher.say("/bangiao")
    await teacher.photo(phone_jpeg(5))  # a photo where a name is expected
    assert "chưa cần ảnh" in teacher.text and "Gõ một phần họ tên" in teacher.text
    await teacher.say("Xuân")
    assert "Không tìm thấy học sinh nào khớp «Xuân»" in teacher.text
    await teacher.say("binh")
    await teacher.say("Nguyễn Thị Hoa")  # not one of the options offered
    assert "không khớp lựa chọn nào" in teacher.text
    await teacher.tap("Lê Văn Bình")
    await teacher.tap_key("abcdef.1")  # a stale button of an old question
    assert "hết hạn" in teacher.text
    await teacher.tap("HP ProBook")
    assert "Ngày bàn giao" in teacher.text  # no serial question: the batch has no serials
    await teacher.say("18/11/2021")
    assert "tương lai" in teacher.text
    await teacher.say("14/11/2021")
    assert "trước ngày trường nhận lô máy (15/11/2021)" in teacher.text
    await teacher.say("2021-11-16")
    assert "chưa đúng dạng" in teacher.text
    await teacher.say("16/11/2021")
    await teacher.say("đây là ảnh")  # text where a photo is expected
    assert "cần gửi một ảnh" in teacher.text
    await teacher.say("xong")  # done before any photo
    assert "Cần ít nhất 1 ảnh" in teacher.text
    await teacher.photo(minimal_pdf(), mime="application/pdf")  # a document that is not an image
    assert "không phải là ảnh" in teacher.text
    await teacher.photo(phone_jpeg(6, (40, 30)))
    assert "quá nhỏ" in teacher.text
    assert _files(store) == set()  # nothing refused was stored
    await teacher.photo(phone_jpeg(6))
    await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    [h] = _handovers(sqlite_engine)
    assert h.handed_over_on == date(2021, 11, 16)


async def test_many_serials_are_typed_and_checked(
    principal, teacher, sqlite_engine, sqlite_world, seeded, clock
) -> None:
    serials = [f"SN{n:03d}" for n in range(1, 16)]
    with session_scope(sqlite_engine) as s:
        receipts.record_batch(
            s,
            school_id=sqlite_world.school_a,
            by=sqlite_world.principal_a,
            source=Source.OTHER,
            sponsor_id=None,
            received_on=RECEIVED,
            quantity=15,
            device_type=DeviceType.TABLET,
            brand_model="Samsung Tab A7",
            condition="Mới",
            serials=serials,
            now=clock.now(),
        )
    await fill(teacher, "/bangiao", "binh", "tap:Lê Văn Bình", "tap:Samsung")
    assert "Gõ số sê-ri" in teacher.text and teacher.labels == ["↩ Quay lại"]
    await teacher.say("DL-1")  # a serial of another batch
    assert "«DL-1» không thuộc lô này" in teacher.text and "SN001, SN002" in teacher.text
    await teacher.say("sn007")
    await fill(teacher, "tap:Hôm nay")
    await teacher.photo(phone_jpeg(8))
    await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    assert "(sê-ri SN007)" in teacher.text


async def test_serial_taken_by_someone_else_meanwhile(eng, teacher, seeded, sqlite_engine, sqlite_world, store) -> None:
    colleague = await Chat.linked(eng, sqlite_world.phones["teacher_a2"])
    await fill(teacher, "/bangiao", "an", "tap:Nguyễn Văn An", "tap:Dell", "tap:DL-1", "tap:Hôm nay")
    await teacher.photo(phone_jpeg(9))
    await fill(teacher, "tap:Xong", "tap:Bỏ qua")
    assert "Lưu thông tin này" in teacher.text
    await fill(colleague, "/bangiao", "binh", "tap:Lê Văn Bình", "tap:Dell", "tap:DL-1", "tap:Hôm nay")
    await colleague.photo(phone_jpeg(10))
    await fill(colleague, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    assert "Đã ghi nhận bàn giao" in colleague.text
    await teacher.tap("Lưu")
    assert "DL-1 không thuộc lô này hoặc đã được bàn giao" in teacher.text
    assert teacher.labels[:2] == ["DL-2", "DL-3"]  # asked again, with what is free now
    await teacher.tap("DL-3")
    await teacher.tap("Lưu")
    assert "(sê-ri DL-3)" in teacher.text
    assert [h.device_id is not None for h in _handovers(sqlite_engine)] == [True, True]
    assert len(_files(store)) == 4  # both handovers' photos kept, nothing else


async def test_photo_reuse_flags_both_handovers_and_tells_the_principal(
    eng, teacher, principal, seeded, sqlite_engine, sqlite_world
) -> None:
    evidence = phone_jpeg(21)
    await _to_photos(teacher, "Nguyễn Văn An")
    await teacher.photo(evidence)
    await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    assert "xem lại" not in teacher.text
    await _to_photos(teacher, "Trần Thị Ánh")
    await teacher.photo(evidence)
    await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    first, second = _handovers(sqlite_engine)
    assert "Bàn giao cần hiệu trưởng xem lại" in teacher.text
    assert f"Ảnh này đã dùng cho bàn giao #{first.id} (học sinh Nguyễn Văn An, ngày 17/11/2021)" in teacher.text
    to_principal = [n for n in teacher.notifications if n.chat_id == principal.chat_id]
    assert len(to_principal) == 2
    assert f"Bàn giao #{second.id} (học sinh Trần Thị Ánh" in to_principal[0].text
    assert "do Trần Văn Minh ghi nhận" in to_principal[0].text
    assert f"Bàn giao #{first.id} của trường" in to_principal[1].text and "Trần Thị Ánh" in to_principal[1].text
    with Session(sqlite_engine) as s:
        flags = s.scalars(select(Flag).order_by(Flag.id)).all()
        assert {(f.handover_id, f.related_handover_id, f.kind) for f in flags} == {
            (second.id, first.id, "photo_reused"),
            (first.id, second.id, "photo_reused"),
        }
    # A different scene for the third student: nothing flagged.
    await _to_photos(teacher, "Lê Văn Bình")
    await teacher.photo(phone_jpeg(22))
    await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    assert "Đã ghi nhận bàn giao" in teacher.text and "xem lại" not in teacher.text
    assert teacher.notifications == []


async def test_principal_recording_a_flagged_handover_sees_it_without_notifying_self(principal, seeded) -> None:
    await _to_photos(principal, "Nguyễn Văn An")
    await principal.photo(phone_jpeg(31, taken=datetime(2021, 10, 1, 9, 0)))  # 47 days before the handover
    await fill(principal, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    assert "Ảnh được chụp ngày 01/10/2021, trước ngày bàn giao 17/11/2021 tới 47 ngày" in principal.text
    assert principal.notifications == []


async def test_other_school_principal_cannot_reach_school_a(eng, seeded, sqlite_world) -> None:
    other = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    await other.say("/bangiao")
    await other.say("Nguyễn Văn An")  # a school A student
    assert "Không tìm thấy học sinh" in other.text
    await other.say("an")
    assert other.labels[:1] == ["Đỗ Văn An — 5A1 — 0200000001"]
    await other.tap("Đỗ Văn An")
    assert [label for label in other.labels if label.startswith("Lô")] == ["Lô 15/11/2021 — Asus VivoBook (còn 2/2)"]
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/bangiao")
    assert "không dành cho" in officer.text


async def test_nothing_to_hand_over_is_said_up_front(eng, sqlite_world) -> None:
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_b"])
    await teacher.say("/bangiao")
    assert "chưa có học sinh nào đã được duyệt" in teacher.text


async def test_restart_resumes_between_photos(teacher, seeded, sqlite_engine, programme, clock, store) -> None:
    await _to_photos(teacher)
    await teacher.photo(phone_jpeg(41))
    fresh = Chat(make_engine(sqlite_engine, programme, clock, photos=store), teacher.user_id)
    await fresh.photo(phone_jpeg(42))
    assert "Đã nhận 2 ảnh" in fresh.text
    await fill(fresh, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
    [h] = _handovers(sqlite_engine)
    with Session(sqlite_engine) as s:
        assert s.scalar(select(func.count()).select_from(HandoverPhoto).where(HandoverPhoto.handover_id == h.id)) == 2


async def test_no_orphan_file_when_a_photo_step_fails_or_the_form_is_cancelled(
    teacher, seeded, sqlite_engine, store, clock, monkeypatch
) -> None:
    await _to_photos(teacher)
    real_save = state_module.save_conversation  # the step's progress, written as it commits (commit_step)

    def disk_full(*args, **kwargs):
        raise OSError("database or disk is full")

    monkeypatch.setattr(state_module, "save_conversation", disk_full)
    await teacher.photo(phone_jpeg(51))
    assert "hệ thống gặp lỗi" in teacher.text
    assert _files(store) == set()  # the step failed: the file it wrote went with it
    monkeypatch.setattr(state_module, "save_conversation", real_save)
    await teacher.resend()  # the same photo again, now the step commits
    assert "Đã nhận 1 ảnh" in teacher.text and len(_files(store)) == 2
    await teacher.say("/huy")
    assert "Đã hủy" in teacher.text
    # The cancelled form's photo is named by no row and no form: the sweep removes it once it is not recent.
    old = (clock.now() - timedelta(hours=2)).timestamp()
    for path in store.media_dir.rglob("*.jpg"):
        os.utime(path, (old, old))
    with session_scope(sqlite_engine) as s:
        assert evidence.discard_orphan_files(s, store=store, older_than=clock.now() - timedelta(hours=1)) == 1
        assert s.scalar(select(func.count()).select_from(Photo)) == 0
    assert _files(store) == set()


async def test_two_handovers_with_one_photo_on_both_databases(db_engine, world, programme, clock, tmp_path) -> None:
    """The whole form on SQLite and PostgreSQL: two handovers of one batch, the second reusing the photo."""
    store = PhotoStore(tmp_path / "media")
    now = clock.now()
    with session_scope(db_engine) as s:
        for name, code in (("Nguyễn Văn An", "0300000001"), ("Trần Thị Ánh", "0300000002")):
            s.add(
                Student(
                    school_id=world.school_a,
                    code=code,
                    full_name=name,
                    birth_date=date(2011, 1, 2),
                    gender="male",
                    class_name="5A1",
                    category="poor",
                    need="device",
                    status=ReviewStatus.APPROVED,
                    registered_by=world.teacher_a,
                    created_at=now,
                    updated_at=now,
                )
            )
        receipts.record_batch(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=RECEIVED,
            quantity=2,
            device_type=DeviceType.LAPTOP,
            brand_model="HP ProBook 440",
            condition="Mới",
            serials=["H1", "H2"],
            now=now,
        )
    eng = make_engine(db_engine, programme, clock, photos=store)
    teacher = await Chat.linked(eng, world.phones["teacher_a"])
    await Chat.linked(eng, world.phones["principal_a"])
    evidence = phone_jpeg(71)
    for student, serial in (("Nguyễn Văn An", "H1"), ("Trần Thị Ánh", "H2")):
        await fill(teacher, "/bangiao", student.split()[-1], f"tap:{student}", "tap:HP", f"tap:{serial}", "tap:Hôm nay")
        await teacher.photo(evidence)
        await fill(teacher, "tap:Xong", "tap:Bỏ qua", "tap:Lưu")
        assert f"(sê-ri {serial})" in teacher.text
    first, second = _handovers(db_engine)
    assert f"Ảnh này đã dùng cho bàn giao #{first.id}" in teacher.text and len(teacher.notifications) == 2
    with Session(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 1
        assert {f.handover_id for f in s.scalars(select(Flag))} == {first.id, second.id}
    assert len(_files(store)) == 2
    await teacher.say("/bangiao")
    assert "chưa có học sinh nào" in teacher.text


async def test_the_same_photo_twice_is_counted_once(teacher, seeded, sqlite_engine, store) -> None:
    await _to_photos(teacher)
    photo = phone_jpeg(61)
    await teacher.photo(photo)
    assert "Đã nhận 1 ảnh" in teacher.text
    await teacher.photo(photo)  # the same picture again (a double tap on "send")
    assert "Ảnh này bạn đã gửi rồi" in teacher.text and "Đã nhận 1 ảnh" in teacher.text
    assert "Đã nhận 2 ảnh" not in teacher.text
    await teacher.photo(phone_jpeg(62))
    assert "Đã nhận 2 ảnh" in teacher.text
    await teacher.tap("Xong")
    await teacher.photo(photo)  # a scene photo sent again as the minutes
    assert "đã được gửi làm ảnh bàn giao" in teacher.text and "biên bản" in teacher.text
    await teacher.tap("Bỏ qua")
    assert "Ảnh bàn giao: 2 ảnh" in teacher.text
    await teacher.tap("Lưu")
    assert "Đã ghi nhận bàn giao" in teacher.text
    with Session(sqlite_engine) as s:
        [h] = _handovers(sqlite_engine)
        assert len(s.scalars(select(HandoverPhoto).where(HandoverPhoto.handover_id == h.id)).all()) == 2


async def test_a_pupil_search_is_one_access_log_row(teacher, seeded, sqlite_engine) -> None:
    """The search lists pupils other teachers registered: a read of pupil data (issue 19's record of
    processing), one row per search with the number shown; a search that finds nothing reads nothing."""
    from storage import access_log

    await teacher.say("/bangiao")
    await teacher.say("zzz")  # no match: refused, asked again, nothing read
    await teacher.say("an")
    assert teacher.labels[:2] == ["Nguyễn Văn An — 5A1 — 0100000001", "Trần Thị Ánh — 5A1 — 0100000002"]
    with Session(sqlite_engine) as s:
        rows = [(r.actor, r.role, r.what, r.scope, r.pupils) for r in access_log.entries(s)]
    assert rows == [("Trần Văn Minh", "teacher", "search", "school:TH-PHUHOA1", 2)]
