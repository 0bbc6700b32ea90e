"""The per-message fast path: dedupe, who is writing, their form in progress — SQLAlchemy Core, one
transaction per message.

Every message runs these statements, so they avoid the ORM's identity map and unit of work (DESIGN.md:
an ORM get/flush/commit per message is ~600 updates/s; these Core statements keep the whole step well
above 1,000/s on SQLite). Records that a form finally writes still use the ORM: that happens once per form.

There is deliberately no in-process cache of identity -> person: the one indexed join below reads the
person's ``active`` flag fresh on every message, so a deactivation in the roster takes effect on the very
next message and there is no cache to invalidate across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from conversations.forms.base import Person
from storage.models import ChatIdentity, Conversation, ProcessedMessage, Staff

_ident = ChatIdentity.__table__
_staff = Staff.__table__
_conv = Conversation.__table__
_processed = ProcessedMessage.__table__


@dataclass(slots=True)
class ConvRow:
    channel: str
    chat_id: str
    form: str
    step: str
    data: dict[str, Any]


@dataclass(slots=True)
class Sender:
    person: Person
    active: bool
    conversation: ConvRow | None


def _insert(conn: Connection, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def claim_message(conn: Connection, *, channel: str, message_id: str, now: datetime) -> bool:
    """Record the platform message; False if it was already processed (a redelivery)."""
    stmt = _insert(conn, _processed).values(channel=channel, message_id=message_id[:128], processed_at=now)
    result = conn.execute(stmt.on_conflict_do_nothing(index_elements=["channel", "message_id"]))
    return result.rowcount == 1


def prune_processed(conn: Connection, *, before: datetime) -> int:
    return conn.execute(delete(_processed).where(_processed.c.processed_at < before)).rowcount


_SENDER = (
    select(
        _staff.c.id, _staff.c.full_name, _staff.c.role, _staff.c.school_id, _staff.c.district_id,
        _staff.c.language, _staff.c.active,
        _conv.c.channel, _conv.c.chat_id, _conv.c.form, _conv.c.step, _conv.c.data,
    )
    .select_from(_ident.join(_staff, _staff.c.id == _ident.c.staff_id).outerjoin(_conv, _conv.c.staff_id == _staff.c.id))
)


def load_sender(conn: Connection, *, channel: str, external_id: str) -> Sender | None:
    """The linked person behind a chat account with their form in progress, or None for an unknown account."""
    row = conn.execute(
        _SENDER.where(_ident.c.channel == channel, _ident.c.external_id == external_id)
    ).first()
    if row is None:
        return None
    person = Person(id=row.id, full_name=row.full_name, role=row.role, school_id=row.school_id,
                    district_id=row.district_id, language=row.language or "vi")
    conv = None
    if row.form is not None:
        conv = ConvRow(channel=row.channel, chat_id=row.chat_id, form=row.form, step=row.step,
                       data=row.data or {})
    return Sender(person=person, active=bool(row.active), conversation=conv)


def save_conversation(conn: Connection, *, staff_id: int, channel: str, chat_id: str, form: str, step: str,
                      data: dict[str, Any], now: datetime) -> None:
    """Upsert the person's one form in progress (one statement on both databases)."""
    stmt = _insert(conn, _conv).values(staff_id=staff_id, channel=channel, chat_id=chat_id, form=form,
                                       step=step[:64], data=data, started_at=now, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["staff_id"],
        set_={"channel": channel, "chat_id": chat_id, "form": form, "step": step[:64], "data": data,
              "updated_at": now},
    )
    conn.execute(stmt)


def delete_conversation(conn: Connection, *, staff_id: int) -> None:
    conn.execute(delete(_conv).where(_conv.c.staff_id == staff_id))


# --- JSON for form values: dates survive the round trip -------------------------------------------------


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        raise TypeError("form values hold dates, not datetimes")
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$d" in value:
            return date.fromisoformat(value["$d"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
