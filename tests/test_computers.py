"""storage.receipts, handovers and evidence on SQLite and PostgreSQL: receipts, sponsors, handovers, photo reuse, CSDL confirmation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from conversations.refusals import refusal
from conversations.state import save_conversation
from core.clock import LOCAL_TZ
from core.vocabulary import DeviceType, FlagKind, PhotoKind, ReviewStatus, Source, SponsorKind, flag_text
from storage import evidence, handovers, receipts
from storage.db import session_scope
from storage.errors import NotAllowed, RecordError
from storage.models import AuditEvent, Batch, Handover, HandoverPhoto, Photo, Sponsor
from storage.photos import PhotoStore
from tests.factories import enrol_student, receive_batch
from tests.photo_factory import encode, phone_jpeg, scene

RECEIVED = date(2021, 11, 15)
TODAY = date(2021, 11, 17)  # the clock fixture's local date


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


def media_files(store: PhotoStore) -> set[str]:
    return {str(p.relative_to(store.media_dir)) for p in store.media_dir.rglob("*.jpg")}


def handover(
    engine,
    world,
    programme,
    clock,
    *,
    student: int,
    batch: int,
    photos,
    serial: str | None = None,
    by: int | None = None,
    day: date = TODAY,
):
    with session_scope(engine) as s:
        h, flags = handovers.record_handover(
            s,
            student_id=student,
            batch_id=batch,
            serial=serial,
            handed_over_on=day,
            by=by or world.teacher_a,
            photos=photos,
            programme=programme,
            now=clock.now(),
        )
        return h, flags


# --- batches and sponsors ---------------------------------------------------------------------------------


def test_record_batch_with_serials_creates_devices_and_audit(db_engine, world, clock) -> None:
    bid = receive_batch(db_engine, world, quantity=3, serials=["abc-1", "ABC-2", " abc-3 "], now=clock.now())
    with session_scope(db_engine) as s:
        batch = s.get(Batch, bid)
        assert (batch.quantity, batch.handed_over, batch.source) == (3, 0, "programme")
        assert receipts.free_serials(s, batch_id=bid) == ["ABC-1", "ABC-2", "ABC-3"]
        assert receipts.batch_label(batch) == "Lô 15/11/2021 — Dell Latitude 3420 (còn 3/3)"
        audit = s.scalars(select(AuditEvent).where(AuditEvent.entity == "batch")).one()
        assert audit.actor_id == world.principal_a and audit.after["serials"] == 3


BATCH_REFUSALS = [
    ({"quantity": 0}, "quantity", "từ 1 đến 10.000"),
    ({"quantity": -2}, "quantity", "từ 1 đến 10.000"),
    ({"quantity": 10_001}, "quantity", "từ 1 đến 10.000"),
    ({"received_on": TODAY + timedelta(days=1)}, "future_date", "18/11/2021"),
    ({"quantity": 2, "serials": ["S1"]}, "serial_count", "1 số sê-ri"),
    ({"quantity": 2, "serials": ["S1", "s1"]}, "serial_repeated", "S1"),
    ({"quantity": 1, "serials": ["S 1"]}, "serial_invalid", "S 1"),
    ({"brand_model": "   "}, "empty", "hãng và model"),
    ({"by": "teacher_a"}, "not_principal", "Chỉ hiệu trưởng"),
    ({"by": "principal_b"}, "not_principal", "Chỉ hiệu trưởng"),
    ({"by": "officer"}, "not_principal", "Chỉ hiệu trưởng"),
    ({"by": "inactive_teacher_a"}, "inactive", "ngừng hoạt động"),
]


def test_record_batch_refusals(db_engine, world, clock) -> None:
    for kwargs, code, needle in BATCH_REFUSALS:
        args = (
            dict(
                school_id=world.school_a,
                by=world.principal_a,
                source=Source.PROGRAMME,
                sponsor_id=None,
                received_on=RECEIVED,
                quantity=2,
                device_type=DeviceType.LAPTOP,
                brand_model="Dell",
                condition="Mới",
                serials=[],
                now=clock.now(),
            )
            | kwargs
        )
        if isinstance(args["by"], str):
            args["by"] = getattr(world, args["by"])
        with pytest.raises(RecordError) as err, session_scope(db_engine) as s:
            receipts.record_batch(s, **args)
        assert (err.value.code, needle in refusal(err.value)) == (code, True), kwargs
        assert isinstance(err.value, NotAllowed) == (code in ("not_principal", "inactive"))
    with session_scope(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 0


def test_serial_already_in_database_is_named(db_engine, world, clock) -> None:
    receive_batch(db_engine, world, quantity=2, serials=["SN100", "SN101"], now=clock.now())
    with pytest.raises(RecordError) as err, session_scope(db_engine) as s:
        receipts.record_batch(
            s,
            school_id=world.school_b,
            by=world.principal_b,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=RECEIVED,
            quantity=2,
            device_type=DeviceType.TABLET,
            brand_model="Samsung Tab A7",
            condition="Mới",
            serials=["SN200", "sn101"],
            now=clock.now(),
        )
    assert err.value.code == "serial_taken"
    assert "SN101" in refusal(err.value) and "Trường Tiểu học Phú Hòa 1" in refusal(err.value)


def test_sponsor_phone_normalised_and_same_name_reused(db_engine, world, clock) -> None:
    with session_scope(db_engine) as s:
        sp = receipts.record_sponsor(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            name="Công ty  Viettel",
            kind=SponsorKind.BUSINESS,
            contact_name="Trần Hùng",
            contact_phone="0913.860.438",
            now=clock.now(),
        )
        first = sp.id
        assert (sp.name, sp.contact_phone) == ("Công ty Viettel", "+84913860438")
    with session_scope(db_engine) as s:
        again = receipts.record_sponsor(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            name="cong ty viettel",
            kind=SponsorKind.BUSINESS,
            contact_name=None,
            contact_phone="0901 000 009",
            now=clock.now(),
        )
        assert again.id == first and again.contact_name == "Trần Hùng" and again.contact_phone == "+84901000009"
        other = receipts.record_sponsor(
            s,
            school_id=world.school_b,
            by=world.principal_b,
            name="Công ty Viettel",
            kind=SponsorKind.BUSINESS,
            contact_name=None,
            contact_phone=None,
            now=clock.now(),
        )
        assert other.id != first  # each school keeps its own sponsor list
        batch = receipts.record_batch(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            source=Source.OTHER,
            sponsor_id=first,
            received_on=RECEIVED,
            quantity=5,
            device_type=DeviceType.DESKTOP,
            brand_model="HP ProDesk",
            condition="Đã qua sử dụng - tốt",
            now=clock.now(),
        )
        assert batch.sponsor_id == first
    with pytest.raises(RecordError, match="phone"), session_scope(db_engine) as s:
        receipts.record_sponsor(
            s,
            school_id=world.school_a,
            by=world.principal_a,
            name="Cá nhân X",
            kind=SponsorKind.INDIVIDUAL,
            contact_name="X",
            contact_phone="12345",
            now=clock.now(),
        )
    with pytest.raises(NotAllowed), session_scope(db_engine) as s:
        receipts.record_sponsor(
            s,
            school_id=world.school_a,
            by=world.teacher_a,
            name="Y",
            kind=SponsorKind.INDIVIDUAL,
            contact_name=None,
            contact_phone=None,
            now=clock.now(),
        )
    with pytest.raises(NotAllowed), session_scope(db_engine) as s:  # B's principal cannot use A's sponsor
        receipts.record_batch(
            s,
            school_id=world.school_b,
            by=world.principal_b,
            source=Source.OTHER,
            sponsor_id=first,
            received_on=RECEIVED,
            quantity=1,
            device_type=DeviceType.DESKTOP,
            brand_model="HP",
            condition="Mới",
            now=clock.now(),
        )
    with session_scope(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Sponsor)) == 2


# --- handovers --------------------------------------------------------------------------------------------


def test_handover_recorded_with_due_date_counter_and_photos(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    sid = enrol_student(db_engine, world, name="Nguyễn Văn An", code="0123456789", now=now)
    bid = receive_batch(db_engine, world, quantity=2, serials=["SN1", "SN2"], now=now)
    scene_p = store.ingest(phone_jpeg(1, taken=datetime(2021, 11, 17, 7, 30)))
    minutes_p = store.ingest(phone_jpeg(2))
    h, flags = handover(
        db_engine,
        world,
        programme,
        clock,
        student=sid,
        batch=bid,
        serial="sn2",
        photos=[(scene_p, PhotoKind.SCENE), (minutes_p, PhotoKind.MINUTES), (scene_p, PhotoKind.SCENE)],
    )
    assert flags == []
    with session_scope(db_engine) as s:
        row = s.get(Handover, h.id)
        assert row.csdl_due_at == datetime(2021, 11, 19, 0, 0, tzinfo=LOCAL_TZ)  # end of the next local day
        assert s.get(Batch, bid).handed_over == 1
        assert receipts.free_serials(s, batch_id=bid) == ["SN1"]
        links = s.execute(select(HandoverPhoto.kind, Photo.sha256).join(Photo)).all()
        assert sorted(links) == sorted([("scene", scene_p.sha256), ("minutes", minutes_p.sha256)])
        assert handovers.students_to_serve(s, school_id=world.school_a) == []


def test_handover_refusals(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    sid = enrol_student(db_engine, world, name="Lê Thị Bình", code="0123456780", now=now)
    pending = enrol_student(
        db_engine, world, name="Lê Văn Chờ", code="0123456781", status=ReviewStatus.PENDING, now=now
    )
    served = enrol_student(db_engine, world, name="Lê Văn Cường", code="0123456782", now=now)
    serial_batch = receive_batch(db_engine, world, quantity=2, serials=["X1", "X2"], now=now)
    plain_batch = receive_batch(db_engine, world, quantity=2, now=now, brand="Asus")
    b_batch = receive_batch(db_engine, world, quantity=2, school="b", now=now)
    handover(
        db_engine,
        world,
        programme,
        clock,
        student=served,
        batch=serial_batch,
        serial="X1",
        photos=[(store.ingest(phone_jpeg(4)), PhotoKind.SCENE)],
    )
    photo = store.ingest(phone_jpeg(3))
    cases = [
        ({"student": pending}, "not_approved"),
        ({"student": served, "batch": serial_batch, "serial": "X2"}, "served"),
        ({"batch": b_batch}, "batch_other_school"),
        ({"by": world.principal_b}, "other_school"),
        ({"by": world.officer}, "other_school"),
        ({"batch": serial_batch}, "serial_needed"),
        ({"batch": serial_batch, "serial": "x1"}, "serial_not_free"),
        ({"batch": serial_batch, "serial": "Y7"}, "serial_not_free"),
        ({"serial": "X9"}, "serial_not_in_batch"),
        ({"day": TODAY + timedelta(days=1)}, "future_date"),
        ({"day": RECEIVED - timedelta(days=1)}, "before_receipt"),
        ({"photos": [(photo, PhotoKind.MINUTES)]}, "no_photo"),
    ]
    for change, code in cases:
        args = dict(student=sid, batch=plain_batch, photos=[(photo, PhotoKind.SCENE)]) | change
        with pytest.raises(RecordError) as err:
            handover(db_engine, world, programme, clock, **args)
        assert err.value.code == code, change
        assert isinstance(err.value, NotAllowed) == (code in ("other_school", "batch_other_school")) and refusal(
            err.value
        )
    with session_scope(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Handover)) == 1
        assert [s.get(Batch, b).handed_over for b in (serial_batch, plain_batch, b_batch)] == [1, 0, 0]


def test_last_computer_cannot_be_handed_over_twice(db_engine, world, clock, programme, store) -> None:
    """A stale read of the batch (another session handed over the last computer meanwhile) is stopped by the
    guarded UPDATE, not by the check that read it."""
    now = clock.now()
    s1 = enrol_student(db_engine, world, name="Phạm Minh Đức", code="0123456782", now=now)
    s2 = enrol_student(db_engine, world, name="Phạm Minh Tâm", code="0123456783", now=now)
    bid = receive_batch(db_engine, world, quantity=1, now=now)
    with Session(db_engine, expire_on_commit=False) as late:
        assert late.get(Batch, bid).handed_over == 0  # read, and kept in the identity map
        late.commit()
        handover(
            db_engine,
            world,
            programme,
            clock,
            student=s1,
            batch=bid,
            photos=[(store.ingest(phone_jpeg(5)), PhotoKind.SCENE)],
        )
        with pytest.raises(RecordError) as err:
            handovers.record_handover(
                late,
                student_id=s2,
                batch_id=bid,
                serial=None,
                handed_over_on=TODAY,
                by=world.teacher_a,
                photos=[(store.ingest(phone_jpeg(6)), PhotoKind.SCENE)],
                programme=programme,
                now=now,
            )
        assert err.value.code == "batch_empty"
        late.rollback()
    with session_scope(db_engine) as s:
        assert s.get(Batch, bid).handed_over == 1
        assert s.scalar(select(func.count()).select_from(Handover)) == 1


# --- photo evidence ---------------------------------------------------------------------------------------


def _recompressed_crop(seed: int) -> bytes:
    """The scene forwarded through another phone: 1% border trimmed, scaled down, re-compressed."""
    img = scene(seed)
    w, h = img.size
    return encode(img.crop((w // 100, h // 100, w - w // 100, h - h // 100)).resize((640, 480)), "JPEG", quality=70)


def test_photo_reuse_flags_both_handovers(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    a1 = enrol_student(db_engine, world, name="Đỗ Thị Hoa", code="1000000001", now=now)
    a2 = enrol_student(db_engine, world, name="Đỗ Thị Huệ", code="1000000002", now=now)
    a3 = enrol_student(db_engine, world, name="Đỗ Văn Hùng", code="1000000003", now=now)
    b1 = enrol_student(db_engine, world, name="Vũ Thị Lan", code="1000000004", school="b", now=now)
    bid = receive_batch(db_engine, world, quantity=5, now=now)
    bid_b = receive_batch(db_engine, world, quantity=5, school="b", now=now)

    original = store.ingest(phone_jpeg(11))
    h1, flags = handover(
        db_engine, world, programme, clock, student=a1, batch=bid, photos=[(original, PhotoKind.SCENE)]
    )
    assert flags == []

    # The very same picture sent again for another child: one Photo row, two links, both handovers flagged.
    again = store.ingest(phone_jpeg(11))
    assert again.sha256 == original.sha256 and not again.is_new
    h2, flags = handover(db_engine, world, programme, clock, student=a2, batch=bid, photos=[(again, PhotoKind.SCENE)])
    by_handover = {f.handover_id: f for f in flags}
    assert set(by_handover) == {h1.id, h2.id}
    assert all(f.kind == FlagKind.PHOTO_REUSED for f in flags)
    assert (
        flag_text(by_handover[h2.id].kind, by_handover[h2.id].params)
        == f"Ảnh này đã dùng cho bàn giao #{h1.id} (học sinh Đỗ Thị Hoa, ngày 17/11/2021)."
    )
    assert (
        flag_text(by_handover[h1.id].kind, by_handover[h1.id].params)
        == f"Ảnh này đã dùng cho bàn giao #{h2.id} (học sinh Đỗ Thị Huệ, ngày 17/11/2021)."
    )

    # A cropped, re-compressed copy is a different file but the same scene: a near-duplicate.
    crop = store.ingest(_recompressed_crop(11))
    assert crop.sha256 != original.sha256
    h3, flags = handover(db_engine, world, programme, clock, student=a3, batch=bid, photos=[(crop, PhotoKind.SCENE)])
    assert {f.kind for f in flags} == {FlagKind.PHOTO_NEAR_DUPLICATE}
    assert {(f.handover_id, f.related_handover_id) for f in flags} == {
        (h3.id, h1.id),
        (h1.id, h3.id),
        (h3.id, h2.id),
        (h2.id, h3.id),
    }
    assert "gần giống" in flag_text(flags[0].kind, flags[0].params)

    # Another school reusing it: flagged on both sides, each principal sees the other side by school only.
    h4, flags = handover(
        db_engine,
        world,
        programme,
        clock,
        student=b1,
        batch=bid_b,
        by=world.teacher_b,
        photos=[(store.ingest(phone_jpeg(11)), PhotoKind.SCENE)],
    )
    mine = [f for f in flags if f.handover_id == h4.id]
    theirs = [f for f in flags if f.handover_id != h4.id]
    assert {f.school_id for f in theirs} == {world.school_a} and len(theirs) == 3
    assert all(
        "Trường Tiểu học Phú Hòa 1" in flag_text(f.kind, f.params) and "Đỗ" not in flag_text(f.kind, f.params)
        for f in mine
    )
    assert all(
        "Trường THCS Chu Văn An" in flag_text(f.kind, f.params) and "Vũ" not in flag_text(f.kind, f.params)
        for f in theirs
    )

    with session_scope(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 2
        assert len(handovers.open_flags(s, school_id=world.school_a)) == 2 + 4 + 3
        assert len(handovers.open_flags(s, school_id=world.school_b)) == 3


def test_different_photo_not_flagged(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    ids = [enrol_student(db_engine, world, name=f"Học Sinh Số {n}", code=f"200000000{n}", now=now) for n in range(4)]
    bid = receive_batch(db_engine, world, quantity=4, now=now)
    for n, sid in enumerate(ids):
        _, flags = handover(
            db_engine,
            world,
            programme,
            clock,
            student=sid,
            batch=bid,
            photos=[(store.ingest(phone_jpeg(100 + n)), PhotoKind.SCENE)],
        )
        assert flags == []


def test_capture_time_flag(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    s1 = enrol_student(db_engine, world, name="Trịnh Văn Nam", code="3000000001", now=now)
    s2 = enrol_student(db_engine, world, name="Trịnh Văn Bắc", code="3000000002", now=now)
    bid = receive_batch(db_engine, world, quantity=2, received_on=date(2021, 10, 1), now=now)
    old = store.ingest(phone_jpeg(21, taken=datetime(2021, 10, 2, 9, 0)))
    _, flags = handover(db_engine, world, programme, clock, student=s1, batch=bid, photos=[(old, PhotoKind.SCENE)])
    assert [f.kind for f in flags] == [FlagKind.CAPTURE_TIME]
    assert "02/10/2021" in flag_text(flags[0].kind, flags[0].params) and "46 ngày" in flag_text(
        flags[0].kind, flags[0].params
    )
    recent = store.ingest(phone_jpeg(22, taken=datetime(2021, 11, 12, 9, 0)))  # 5 days before: plausible
    _, flags = handover(db_engine, world, programme, clock, student=s2, batch=bid, photos=[(recent, PhotoKind.SCENE)])
    assert flags == []


def test_failed_handover_leaves_no_orphan_file(db_engine, world, clock, programme, store) -> None:
    """The handover is recorded but its transaction fails afterwards (here: the end of the form cannot be
    saved): the files written for it go, the file an earlier handover uses stays."""
    now = clock.now()
    s1 = enrol_student(db_engine, world, name="Mai Văn Sơn", code="4000000001", now=now)
    s2 = enrol_student(db_engine, world, name="Mai Thị Thủy", code="4000000002", now=now)
    bid = receive_batch(db_engine, world, quantity=2, serials=["Z1", "Z2"], now=now)
    used = store.ingest(phone_jpeg(31))
    handover(db_engine, world, programme, clock, student=s1, batch=bid, serial="Z1", photos=[(used, PhotoKind.SCENE)])
    kept = media_files(store)

    fresh = store.ingest(phone_jpeg(32))
    reused = store.ingest(phone_jpeg(31))
    assert fresh.is_new and not reused.is_new and media_files(store) > kept
    with pytest.raises(RuntimeError), session_scope(db_engine) as s:
        handovers.record_handover(
            s,
            student_id=s2,
            batch_id=bid,
            serial="Z2",
            handed_over_on=TODAY,
            by=world.teacher_a,
            photos=[(fresh, PhotoKind.SCENE), (reused, PhotoKind.MINUTES)],
            programme=programme,
            now=now,
        )
        raise RuntimeError("the form's end could not be saved")
    with session_scope(db_engine) as s:
        assert evidence.discard_unreferenced(s, store=store, photos=[fresh, reused]) == 1
        assert s.scalar(select(func.count()).select_from(Handover)) == 1
        assert s.get(Batch, bid).handed_over == 1 and receipts.free_serials(s, batch_id=bid) == ["Z2"]
    assert media_files(store) == kept


def test_orphan_files_of_cancelled_forms_are_swept(db_engine, world, clock, programme, store) -> None:
    """Photos sent in a handover that was then cancelled: no row and no form names them. Files of committed
    photos, of forms still in progress, and recent files stay."""
    import os

    now = clock.now()
    sid = enrol_student(db_engine, world, name="Lò Văn Páo", code="4100000001", now=now)
    bid = receive_batch(db_engine, world, quantity=1, now=now)
    committed = store.ingest(phone_jpeg(61))
    handover(db_engine, world, programme, clock, student=sid, batch=bid, photos=[(committed, PhotoKind.SCENE)])
    in_form = store.ingest(phone_jpeg(62))
    cancelled = store.ingest(phone_jpeg(63))
    recent = store.ingest(phone_jpeg(64))
    with db_engine.begin() as conn:  # a /bangiao in progress, saved as the engine saves it
        save_conversation(
            conn,
            staff_id=world.teacher_a2,
            channel="telegram",
            chat_id="1",
            form="bangiao",
            step="photos",
            data={"v": {"student": sid}, "s": [evidence.stored_photo_to_dict(in_form)]},
            now=now,
        )
    old = (now - timedelta(hours=3)).timestamp()
    for p in (committed, in_form, cancelled):
        for rel in (p.path, p.thumb_path):
            os.utime(store.open_path(rel), (old, old))
    with session_scope(db_engine) as s:
        assert evidence.discard_orphan_files(s, store=store, older_than=now - timedelta(hours=1)) == 1
    left = media_files(store)
    assert cancelled.path not in left and cancelled.thumb_path not in left
    assert {committed.path, in_form.path, recent.path, committed.thumb_path} <= left


def test_stored_photo_round_trips_through_form_state(store) -> None:
    p = store.ingest(phone_jpeg(41, taken=datetime(2021, 11, 16, 10, 0), gps=True))
    back = evidence.stored_photo_from_dict(evidence.stored_photo_to_dict(p))
    assert back == p and back.is_new == p.is_new and back.captured_at == p.captured_at and back.had_location


# --- students to serve, CSDL confirmation --------------------------------------------------------------------


def test_students_to_serve_matches_without_accents_and_by_code(db_engine, world, clock) -> None:
    now = clock.now()
    enrol_student(db_engine, world, name="Nguyễn Đức Anh", code="5000000001", now=now)
    enrol_student(db_engine, world, name="Nguyễn Thị Ánh", code="5000000002", now=now)
    enrol_student(db_engine, world, name="Nguyễn Văn Chờ", code="5000000003", status=ReviewStatus.PENDING, now=now)
    enrol_student(db_engine, world, name="Lê Văn Toàn", code="5000000005", now=now)
    enrol_student(db_engine, world, name="Nguyễn Văn Bê", code="5000000004", school="b", now=now)
    with session_scope(db_engine) as s:
        names = lambda q: [st.full_name for st in handovers.students_to_serve(s, school_id=world.school_a, query=q)]
        assert names("nguyen") == ["Nguyễn Đức Anh", "Nguyễn Thị Ánh"]
        assert names("van") == ["Lê Văn Toàn"]
        assert names("duc anh") == ["Nguyễn Đức Anh"]
        assert names("THỊ ÁNH") == ["Nguyễn Thị Ánh"]
        assert names("anh") == ["Nguyễn Đức Anh", "Nguyễn Thị Ánh"]  # accents optional, both ways
        assert names("50000000") == ["Lê Văn Toàn", "Nguyễn Đức Anh", "Nguyễn Thị Ánh"]
        assert names("xyz") == []
        assert names("an") == ["Nguyễn Đức Anh", "Nguyễn Thị Ánh"]  # word starts: not the "an" inside Văn


def test_confirm_csdl_only_own_unconfirmed_and_audited(db_engine, world, clock, programme, store) -> None:
    now = clock.now()
    bid = receive_batch(db_engine, world, quantity=3, received_on=date(2021, 11, 1), now=now)
    bid_b = receive_batch(db_engine, world, quantity=1, school="b", now=now)
    made = []
    for n, day in enumerate([date(2021, 11, 16), date(2021, 11, 10), date(2021, 11, 17)]):
        sid = enrol_student(db_engine, world, name=f"Hồ Văn {'ABC'[n]}", code=f"600000000{n}", now=now)
        h, _ = handover(
            db_engine,
            world,
            programme,
            clock,
            student=sid,
            batch=bid,
            day=day,
            photos=[(store.ingest(phone_jpeg(50 + n)), PhotoKind.SCENE)],
        )
        made.append(h.id)
    sb = enrol_student(db_engine, world, name="Vũ Văn Bình", code="6000000009", school="b", now=now)
    hb, _ = handover(
        db_engine,
        world,
        programme,
        clock,
        student=sb,
        batch=bid_b,
        by=world.principal_b,
        photos=[(store.ingest(phone_jpeg(59)), PhotoKind.SCENE)],
    )
    with session_scope(db_engine) as s:
        waiting = handovers.handovers_awaiting_csdl(s, school_id=world.school_a)
        assert [h.id for h in waiting] == [made[1], made[0], made[2]]  # oldest due first
        with pytest.raises(NotAllowed):
            handovers.confirm_csdl(s, handover_ids=made, by=world.teacher_a, school_id=world.school_a, now=now)
    with session_scope(db_engine) as s:
        assert (
            handovers.confirm_csdl(
                s, handover_ids=[made[1], hb.id], by=world.principal_a, school_id=world.school_a, now=now
            )
            == 1
        )
    clock.advance(timedelta(hours=1))
    with session_scope(db_engine) as s:
        # A stale "confirm all" including the already confirmed one confirms only the rest.
        assert (
            handovers.confirm_csdl(
                s, handover_ids=made, by=world.principal_a, school_id=world.school_a, now=clock.now()
            )
            == 2
        )
        assert handovers.handovers_awaiting_csdl(s, school_id=world.school_a) == []
        assert s.get(Handover, made[1]).csdl_updated_at == now  # not moved by the second confirmation
        assert s.get(Handover, hb.id).csdl_updated_at is None
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "confirm_csdl")).all()
        assert sorted(e.entity_id for e in events) == sorted(made)
        assert {e.actor_id for e in events} == {world.principal_a}


def test_photos_near_agrees_with_python_on_signed_extremes(db_engine, clock) -> None:
    """The in-database Hamming distance (bit_count on PostgreSQL, a function on SQLite) must treat the
    signed int64 column exactly like the 64-bit unsigned hash it stores."""
    import random

    from storage.photos import hamming

    rnd = random.Random(7)
    probe = -(1 << 63) + 12345
    hashes = [-(1 << 63), (1 << 63) - 1, -1, 0, probe, probe ^ 0b1011, probe ^ (1 << 62)]
    hashes += [rnd.getrandbits(64) - (1 << 63) for _ in range(200)]
    hashes += [(probe ^ (1 << rnd.randrange(63)) ^ (1 << rnd.randrange(63))) for _ in range(20)]
    with session_scope(db_engine) as s:
        s.execute(
            Photo.__table__.insert(),
            [
                {
                    "sha256": f"{i:064x}",
                    "dhash": h,
                    "path": "p",
                    "thumb_path": "t",
                    "width": 1,
                    "height": 1,
                    "size_bytes": 1,
                    "had_location": False,
                    "created_at": clock.now(),
                }
                for i, h in enumerate(hashes)
            ],
        )
    with session_scope(db_engine) as s:
        ids = dict(s.execute(select(Photo.id, Photo.dhash)).all())
        for threshold in (0, 3, 10):
            expected = sorted(pid for pid, h in ids.items() if hamming(probe, h) <= threshold)
            assert sorted(evidence.photos_near(s, probe, threshold=threshold)) == expected
            assert len(expected) >= (1 if threshold == 0 else 2)
