"""A small, fictional district for tests: two schools in Thủ Dầu Một and one school in another district."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from core.vocabulary import Role
from storage.db import session_scope
from storage.models import District, School, Staff


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
