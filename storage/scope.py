"""Who may see what. Every query that reads school data filters through a ``Scope``, so "a teacher of
school A cannot see school B" is enforced in one place, not remembered in each command."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, true

from core.vocabulary import Role
from storage.models import School, Staff


class OutOfScope(Exception):
    """Asked for data outside the person's school or district."""


@dataclass(frozen=True, slots=True)
class Scope:
    district_id: int
    school_id: int | None = None  # None: the whole district (district officer)

    @classmethod
    def for_staff(cls, staff: Staff) -> Scope:
        if staff.role == Role.DISTRICT_OFFICER:
            return cls(district_id=staff.district_id)
        if staff.school_id is None:
            raise OutOfScope(f"staff {staff.id} has a school role but no school")
        return cls(district_id=staff.district_id, school_id=staff.school_id)

    @property
    def is_district(self) -> bool:
        return self.school_id is None

    def allows(self, school: School) -> bool:
        if self.school_id is not None:
            return school.id == self.school_id
        return school.district_id == self.district_id

    def school_ids_query(self):
        """SELECT of the school ids in scope, for ``column.in_(scope.school_ids_query())``."""
        q = select(School.id).where(School.district_id == self.district_id)
        if self.school_id is not None:
            q = q.where(School.id == self.school_id)
        return q

    def filter(self, school_id_column) -> ColumnElement[bool]:
        """A WHERE clause for any table with a school_id column."""
        if self.school_id is not None:
            return school_id_column == self.school_id
        return school_id_column.in_(self.school_ids_query()) if self.district_id else true()
