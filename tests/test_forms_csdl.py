"""Form "csdl" (from /duyet): the principal confirms handovers entered in the sector database, one tap each
or all at once."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.vocabulary import DeviceType, PhotoKind, ReviewStatus, Source
from storage import handovers, receipts
from storage.db import session_scope
from storage.models import AuditEvent, Handover, Student
from storage.photos import PhotoStore
from tests.engine_helpers import Chat, make_engine
from tests.photo_factory import phone_jpeg


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock):
    return make_engine(sqlite_engine, programme, clock)


def _handovers(db, world, programme, clock, store, *, school: str, days: list[date]) -> list[int]:
    """Handovers recorded straight through the storage (the form under test only confirms them)."""
    school_id = world.school_a if school == "a" else world.school_b
    principal = world.principal_a if school == "a" else world.principal_b
    now = clock.now()
    ids = []
    with session_scope(db) as s:
        batch = receipts.record_batch(
            s,
            school_id=school_id,
            by=principal,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=date(2021, 11, 1),
            quantity=len(days),
            device_type=DeviceType.LAPTOP,
            brand_model="Dell",
            condition="Mới",
            serials=[],
            now=now,
        )
        for n, day in enumerate(days):
            st = Student(
                school_id=school_id,
                code=f"{school_id}{n:09d}",
                full_name=f"Học Sinh {'ABCDEFGH'[n]}",
                birth_date=date(2011, 1, 2),
                gender="male",
                class_name="5A1",
                category="poor",
                need="device",
                status=ReviewStatus.APPROVED,
                registered_by=principal,
                created_at=now,
                updated_at=now,
            )
            s.add(st)
            s.flush()
            h, _ = handovers.record_handover(
                s,
                student_id=st.id,
                batch_id=batch.id,
                serial=None,
                handed_over_on=day,
                by=principal,
                photos=[(store.ingest(phone_jpeg(200 * school_id + n)), PhotoKind.SCENE)],
                programme=programme,
                now=now,
            )
            ids.append(h.id)
    return ids


def _confirmed(db) -> dict[int, bool]:
    with Session(db) as s:
        return {h.id: h.csdl_updated_at is not None for h in s.scalars(select(Handover))}


async def test_confirm_one_tap_each_then_all(
    eng, sqlite_engine, sqlite_world, programme, clock, tmp_path: Path
) -> None:
    store = PhotoStore(tmp_path / "media")
    a = _handovers(
        sqlite_engine,
        sqlite_world,
        programme,
        clock,
        store,
        school="a",
        days=[date(2021, 11, 17), date(2021, 11, 15), date(2021, 11, 16)],
    )
    b = _handovers(sqlite_engine, sqlite_world, programme, clock, store, school="b", days=[date(2021, 11, 16)])
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("CSDL")
    text = principal.text
    assert "Bàn giao chờ xác nhận «Đã cập nhật CSDL ngành» (3)" in text
    # The most urgent first; the one handed over on 15/11 was due by the end of 16/11: late on 17/11.
    assert text.index(f"#{a[1]} Học Sinh B") < text.index(f"#{a[2]} Học Sinh C") < text.index(f"#{a[0]} Học Sinh A")
    assert f"#{a[1]} Học Sinh B — bàn giao 15/11/2021 — hạn 16/11/2021 ⏰ quá hạn" in text
    assert f"#{a[0]} Học Sinh A — bàn giao 17/11/2021 — hạn 18/11/2021" in text
    assert principal.labels[:4] == [
        f"✅ #{a[1]} Học Sinh B",
        f"✅ #{a[2]} Học Sinh C",
        f"✅ #{a[0]} Học Sinh A",
        "Xác nhận tất cả (3)",
    ]
    assert not principal.has_option(f"#{b[0]}")  # another school's handover is never offered
    await principal.tap(f"#{a[1]}")
    assert "Đã xác nhận cập nhật CSDL ngành cho 1 bàn giao" in principal.text
    assert "(2)" in principal.text and principal.has_option("Xác nhận tất cả (2)")  # the list comes back
    assert _confirmed(sqlite_engine) == {a[0]: False, a[1]: True, a[2]: False, b[0]: False}
    await principal.tap("Xác nhận tất cả")
    assert "cho 2 bàn giao" in principal.text and principal.options == []  # done: nothing left to list
    assert _confirmed(sqlite_engine) == {a[0]: True, a[1]: True, a[2]: True, b[0]: False}
    with Session(sqlite_engine) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "confirm_csdl")).all()
        assert sorted(e.entity_id for e in events) == sorted(a) and {e.actor_id for e in events} == {
            sqlite_world.principal_a
        }


async def test_confirm_all_covers_only_what_was_listed(
    eng, sqlite_engine, sqlite_world, programme, clock, tmp_path: Path
) -> None:
    """A handover recorded after the list was shown is not confirmed by the old "all" button."""
    store = PhotoStore(tmp_path / "media")
    first = _handovers(
        sqlite_engine, sqlite_world, programme, clock, store, school="a", days=[date(2021, 11, 16), date(2021, 11, 17)]
    )
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("CSDL")
    stale_all = principal.key("Xác nhận tất cả (2)")
    clock.advance(timedelta(minutes=5))
    with session_scope(sqlite_engine) as s:
        batch = receipts.record_batch(
            s,
            school_id=sqlite_world.school_a,
            by=sqlite_world.principal_a,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=date(2021, 11, 1),
            quantity=1,
            device_type=DeviceType.LAPTOP,
            brand_model="HP",
            condition="Mới",
            now=clock.now(),
        )
        st = Student(
            school_id=sqlite_world.school_a,
            code="9999999999",
            full_name="Học Sinh Mới",
            birth_date=date(2011, 1, 2),
            gender="male",
            class_name="5A1",
            category="poor",
            need="device",
            status=ReviewStatus.APPROVED,
            registered_by=sqlite_world.teacher_a,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        s.add(st)
        s.flush()
        late, _ = handovers.record_handover(
            s,
            student_id=st.id,
            batch_id=batch.id,
            serial=None,
            handed_over_on=date(2021, 11, 17),
            by=sqlite_world.teacher_a,
            photos=[(store.ingest(phone_jpeg(777)), PhotoKind.SCENE)],
            programme=programme,
            now=clock.now(),
        )
    await principal.tap_key(stale_all)
    assert "cho 2 bàn giao" in principal.text
    assert f"✅ #{late.id} Học Sinh Mới" in principal.labels  # still waiting, offered again
    assert _confirmed(sqlite_engine) == {first[0]: True, first[1]: True, late.id: False}
    await principal.say("quay lại")  # typed or tapped, back to the /duyet menu
    assert "Bạn muốn duyệt mục nào" in principal.text


async def test_nothing_waiting_and_teachers_cannot_confirm(eng, sqlite_world) -> None:
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("CSDL")
    assert "Không có bàn giao nào chờ xác nhận" in principal.text
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/duyet")
    assert "không dành cho" in teacher.text


async def test_the_list_offers_confirm_all_and_back(
    eng, sqlite_engine, sqlite_world, programme, clock, tmp_path
) -> None:
    store = PhotoStore(tmp_path / "media")
    a = _handovers(sqlite_engine, sqlite_world, programme, clock, store, school="a", days=[date(2021, 11, 16)])
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("CSDL")
    # One handover: the text does not promise a "Xác nhận tất cả" that is not offered; "Quay lại" is there.
    assert "Xác nhận tất cả" not in principal.text and "Quay lại" in principal.text
    assert principal.labels == [f"✅ #{a[0]} Học Sinh A", "↩ Quay lại"]
    await principal.tap("Quay lại")
    assert "Bạn muốn duyệt mục nào" in principal.text and _confirmed(sqlite_engine) == {a[0]: False}
    more = _handovers(sqlite_engine, sqlite_world, programme, clock, store, school="b", days=[date(2021, 11, 16)])
    assert more  # another school's: still one for school A
    principal_b = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    await principal_b.say("/duyet")
    await principal_b.tap("CSDL")
    assert principal_b.labels == [f"✅ #{more[0]} Học Sinh A", "↩ Quay lại"]


async def test_every_option_the_head_names_is_offered(
    eng, sqlite_engine, sqlite_world, programme, clock, tmp_path
) -> None:
    store = PhotoStore(tmp_path / "media")
    _handovers(
        sqlite_engine, sqlite_world, programme, clock, store, school="a", days=[date(2021, 11, 16), date(2021, 11, 17)]
    )
    principal = await Chat.linked(eng, sqlite_world.phones["principal_a"])
    await principal.say("/duyet")
    await principal.tap("CSDL")
    assert "«Xác nhận tất cả»" in principal.text and "«Quay lại»" in principal.text
    assert principal.has_option("Xác nhận tất cả (2)") and principal.has_option("Quay lại")
