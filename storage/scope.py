"""Who may see what. Every query that reads school data filters through a ``Scope``, so "a teacher of
school A cannot see school B" is enforced in one place, not remembered in each command.

Three sizes: one school (teacher, principal), one district (district officer), one province (province
officer: every district whose ``province_id`` is theirs). The chat, the reports and the web view all read
school data through ``Scope.filter``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true

from core.vocabulary import Role
from storage.models import District, School, Staff


class OutOfScope(Exception):
    """Asked for data outside the person's school, district or province."""


@dataclass(frozen=True, slots=True)
class Scope:
    district_id: int | None
    school_id: int | None = None  # None: the whole district (district officer) or province
    province_id: int | None = None  # set (with district_id None) for a province officer

    @classmethod
    def for_staff(cls, staff: Staff) -> Scope:
        if staff.role == Role.PROVINCE_OFFICER:
            province_id = getattr(staff, "province_id", None)
            if province_id is None:
                raise OutOfScope(f"staff {staff.id} is a province officer without a province")
            return cls(district_id=None, province_id=province_id)
        if staff.district_id is None:
            raise OutOfScope(f"staff {staff.id} has no district")
        if staff.role == Role.DISTRICT_OFFICER:
            return cls(district_id=staff.district_id)
        if staff.school_id is None:
            raise OutOfScope(f"staff {staff.id} has a school role but no school")
        return cls(district_id=staff.district_id, school_id=staff.school_id)

    @property
    def is_district(self) -> bool:
        """Many schools (a district or a province), as opposed to one."""
        return self.school_id is None

    @property
    def is_province(self) -> bool:
        return self.school_id is None and self.district_id is None and self.province_id is not None

    def allows(self, school: School) -> bool:
        """Without a database round trip; a province scope cannot tell from the school alone: use ``contains``."""
        if self.school_id is not None:
            return school.id == self.school_id
        if self.district_id is not None:
            return school.district_id == self.district_id
        return False

    def contains(self, session, school_id: int) -> bool:
        """Is this school in scope (any size)? One indexed query through ``filter``."""
        row = session.execute(select(School.id).where(School.id == school_id, self.filter(School.id))).first()
        return row is not None

    def district_ids_query(self):
        """SELECT of the district ids in scope."""
        if self.district_id is not None:
            return select(District.id).where(District.id == self.district_id)
        return select(District.id).where(District.province_id == self.province_id)

    def school_ids_query(self):
        """SELECT of the school ids in scope, for ``column.in_(scope.school_ids_query())``."""
        if self.district_id is None and self.province_id is not None:
            q = select(School.id).where(School.district_id.in_(self.district_ids_query()))
        else:
            q = select(School.id).where(School.district_id == self.district_id)
        if self.school_id is not None:
            q = q.where(School.id == self.school_id)
        return q

    def filter(self, school_id_column) -> ColumnElement[bool]:
        """A WHERE clause for any table with a school_id column."""
        if self.school_id is not None:
            return school_id_column == self.school_id
        if self.district_id:
            return school_id_column.in_(self.school_ids_query())
        if self.province_id is not None:
            return school_id_column.in_(self.school_ids_query())
        return false() if self.district_id is None else true()
