"""Test builders, in one place: a small fictional district (two schools in Thủ Dầu Một, one in another
district) and the rows tests put in it — pupils, batches, handovers, chat links, outbox reads.

``add_*`` write rows directly (for rules and reports that only read them); ``enrol_student`` and
``receive_batch`` go through the record rules (storage.students / storage.receipts) like a form would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.clock import LOCAL_TZ, UTC
from core.programme import Programme
from core.vocabulary import DeviceType, ReviewStatus, Role, Source
from storage import receipts
from storage.db import session_scope
from storage.models import Batch, ChatIdentity, District, Handover, Notification, School, Staff, Student


@dataclass
class World:
    district_id: int
    other_district_id: int
    school_a: int
    school_b: int
    school_other: int  # in the other district
    officer: int  # district officer of Thủ Dầu Một (Lê Minh Tiến)
    other_officer: int
    principal_a: int
    teacher_a: int
    teacher_a2: int
    principal_b: int
    teacher_b: int
    principal_other: int
    inactive_teacher_a: int
    phones: dict[str, str]  # name -> E.164 (officer, principal_a, teacher_a, ...)


def seed_world(engine: Engine, *, now: datetime) -> World:
    with session_scope(engine) as s:
        tdm = District(code="TDM", name="Thành phố Thủ Dầu Một")
        other = District(code="DA", name="Thành phố Dĩ An")
        s.add_all([tdm, other])
        s.flush()
        a = School(code="TH-PHUHOA1", name="Trường Tiểu học Phú Hòa 1", level="TH", district_id=tdm.id)
        b = School(code="THCS-CHUVANAN", name="Trường THCS Chu Văn An", level="THCS", district_id=tdm.id)
        o = School(code="TH-DIAN", name="Trường Tiểu học Dĩ An", level="TH", district_id=other.id)
        s.add_all([a, b, o])
        s.flush()
        people = {
            "officer": ("Lê Minh Tiến", "+84913860438", "leminhtien@tptdm.edu.vn", Role.DISTRICT_OFFICER, None, tdm.id),
            "other_officer": (
                "Phan Văn Hải",
                "+84913000001",
                "hai@dian.example",
                Role.DISTRICT_OFFICER,
                None,
                other.id,
            ),
            "principal_a": ("Nguyễn Thị Lan", "+84901000001", "lan@phuhoa1.example", Role.PRINCIPAL, a.id, tdm.id),
            "teacher_a": ("Trần Văn Minh", "+84901000002", None, Role.TEACHER, a.id, tdm.id),
            "teacher_a2": ("Lý Thu Hà", "+84901000003", "ha@phuhoa1.example", Role.TEACHER, a.id, tdm.id),
            "principal_b": ("Phạm Quốc Bảo", "+84902000001", "bao@chuvanan.example", Role.PRINCIPAL, b.id, tdm.id),
            "teacher_b": ("Võ Thị Mai", "+84902000002", None, Role.TEACHER, b.id, tdm.id),
            "principal_other": ("Đặng Văn Tùng", "+84903000001", None, Role.PRINCIPAL, o.id, other.id),
            "inactive_teacher_a": ("Hồ Văn Cũ", "+84901000009", None, Role.TEACHER, a.id, tdm.id),
        }
        ids: dict[str, int] = {}
        for key, (name, phone, email, role, school_id, district_id) in people.items():
            st = Staff(
                full_name=name,
                phone=phone,
                email=email,
                role=role,
                school_id=school_id,
                district_id=district_id,
                active=key != "inactive_teacher_a",
                created_at=now,
                updated_at=now,
            )
            s.add(st)
            s.flush()
            ids[key] = st.id
        return World(
            district_id=tdm.id,
            other_district_id=other.id,
            school_a=a.id,
            school_b=b.id,
            school_other=o.id,
            phones={k: v[1] for k, v in people.items()},
            **ids,
        )


_codes = itertools.count(100_000_000_000)


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ).astimezone(UTC)


def add_student(
    engine: Engine,
    *,
    school_id: int,
    registered_by: int,
    created_at: datetime,
    status: str = "approved",
    name: str = "Nguyễn Văn An",
    class_name: str = "6A1",
) -> int:
    with session_scope(engine) as s:
        st = Student(
            school_id=school_id,
            code=str(next(_codes)),
            full_name=name,
            birth_date=date(2012, 3, 4),
            gender="male",
            class_name=class_name,
            category="poor",
            need="device",
            status=status,
            registered_by=registered_by,
            created_at=created_at,
            updated_at=created_at,
        )
        s.add(st)
        s.flush()
        return st.id


def add_batch(
    engine: Engine,
    *,
    school_id: int,
    recorded_by: int,
    received_on: date,
    quantity: int = 5,
    handed_over: int = 0,
    created_at: datetime,
) -> int:
    with session_scope(engine) as s:
        b = Batch(
            school_id=school_id,
            source="programme",
            received_on=received_on,
            quantity=quantity,
            device_type="laptop",
            brand_model="Dell Latitude 3420",
            condition="mới",
            handed_over=handed_over,
            recorded_by=recorded_by,
            created_at=created_at,
        )
        s.add(b)
        s.flush()
        return b.id


def add_handover(
    engine: Engine,
    programme: Programme,
    *,
    school_id: int,
    recorded_by: int,
    handed_over_on: date,
    created_at: datetime,
    name: str = "Trần Thị Bích",
    batch_id: int | None = None,
) -> int:
    student = add_student(engine, school_id=school_id, registered_by=recorded_by, created_at=created_at, name=name)
    if batch_id is None:
        batch_id = add_batch(
            engine,
            school_id=school_id,
            recorded_by=recorded_by,
            received_on=handed_over_on,
            quantity=1,
            handed_over=1,
            created_at=created_at,
        )
    with session_scope(engine) as s:
        h = Handover(
            student_id=student,
            batch_id=batch_id,
            school_id=school_id,
            handed_over_on=handed_over_on,
            recorded_by=recorded_by,
            csdl_due_at=programme.handover_update_due(handed_over_on),
            created_at=created_at,
            updated_at=created_at,
        )
        s.add(h)
        s.flush()
        return h.id


def link(
    engine: Engine, *, staff_id: int, channel: str = "telegram", chat_id: str | None = None, linked_at: datetime
) -> str:
    chat_id = chat_id or f"{channel[:2]}{staff_id}"
    with session_scope(engine) as s:
        s.add(
            ChatIdentity(staff_id=staff_id, channel=channel, external_id=chat_id, chat_id=chat_id, linked_at=linked_at)
        )
    return chat_id


def submit_report(engine: Engine, *, school_id: int, at: datetime) -> None:
    with session_scope(engine) as s:
        s.get(School, school_id).needs_report_submitted_at = at


def rows(engine: Engine, **where) -> list[Notification]:
    with session_scope(engine) as s:
        q = select(Notification).order_by(Notification.id)
        for k, v in where.items():
            q = q.where(getattr(Notification, k) == v)
        return list(s.execute(q).scalars())


def enrol_student(
    engine, world, *, name: str, code: str, school: str = "a", status=ReviewStatus.APPROVED, now: datetime
) -> int:
    school_id = world.school_a if school == "a" else world.school_b
    teacher = world.teacher_a if school == "a" else world.teacher_b
    with session_scope(engine) as s:
        st = Student(
            school_id=school_id,
            code=code,
            full_name=name,
            birth_date=date(2011, 3, 4),
            gender="female",
            class_name="5A1",
            category="poor",
            need="device",
            status=status,
            registered_by=teacher,
            created_at=now,
            updated_at=now,
        )
        s.add(st)
        s.flush()
        return st.id


def receive_batch(
    engine,
    world,
    *,
    quantity: int = 3,
    serials: list[str] | None = None,
    school: str = "a",
    received_on: date = date(2021, 11, 15),
    now: datetime,
    brand: str = "Dell Latitude 3420",
) -> int:
    school_id = world.school_a if school == "a" else world.school_b
    principal = world.principal_a if school == "a" else world.principal_b
    with session_scope(engine) as s:
        batch = receipts.record_batch(
            s,
            school_id=school_id,
            by=principal,
            source=Source.PROGRAMME,
            sponsor_id=None,
            received_on=received_on,
            quantity=quantity,
            device_type=DeviceType.LAPTOP,
            brand_model=brand,
            condition="Mới",
            serials=serials or [],
            now=now,
        )
        return batch.id
