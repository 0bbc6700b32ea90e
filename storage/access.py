"""Who may do what, the audit trail of record writes, and the calendar checks every record rule shares."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from core.clock import LOCAL_TZ
from core.vocabulary import Role
from storage import audit
from storage.errors import NotAllowed, RecordError
from storage.models import (
    Staff,
)


def local_today(now: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    return now.astimezone(tz).date()


def check_not_future(day: date, *, now: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    today = local_today(now, tz)
    if day > today:
        raise RecordError("future_date", day=day, today=today)
    return day


# --- who may do what --------------------------------------------------------------------------------------


def _staff(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None or not staff.active:
        raise NotAllowed("inactive")
    return staff


def require_principal(session: Session, *, staff_id: int, school_id: int, action: str) -> Staff:
    staff = _staff(session, staff_id)
    if staff.role != Role.PRINCIPAL or staff.school_id != school_id:
        raise NotAllowed("not_principal", action=action)
    return staff


def require_school_staff(session: Session, *, staff_id: int, school_id: int) -> Staff:
    staff = _staff(session, staff_id)
    if staff.role not in (Role.PRINCIPAL, Role.TEACHER) or staff.school_id != school_id:
        raise NotAllowed("other_school")
    return staff


def audit_write(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict | None,
    after: dict | None,
    now: datetime,
) -> None:
    audit.record(
        session,
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
        now=now,
    )
