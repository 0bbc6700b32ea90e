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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from conversations.forms.base import Person
from storage.models import ChatIdentity, Conversation, ProcessedMessage, School, Staff

_ident = ChatIdentity.__table__
_staff = Staff.__table__
_conv = Conversation.__table__
_processed = ProcessedMessage.__table__
_school = School.__table__


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
    blocked_identity: int | None = None  # the chat identity written from, when it is marked blocked


def _dialect(conn: Connection):
    return postgresql if conn.dialect.name == "postgresql" else sqlite


# Statements are built once per dialect and executed with parameters, so SQLAlchemy's compiled cache is hit
# on every message (building an INSERT .. ON CONFLICT with literal values costs more than running it).
_CLAIM: dict[str, Any] = {}
_UPSERT: dict[str, Any] = {}


def _claim_stmt(conn: Connection):
    name = conn.dialect.name
    if name not in _CLAIM:
        ins = (
            _dialect(conn)
            .insert(_processed)
            .values(channel=bindparam("channel"), message_id=bindparam("message_id"), processed_at=bindparam("at"))
        )
        # preserve_rowcount: SQLAlchemy reports -1 for an INSERT's rowcount on psycopg unless asked to keep it
        # (without it every message on PostgreSQL looked like a redelivery and was silently dropped).
        _CLAIM[name] = ins.on_conflict_do_nothing(index_elements=["channel", "message_id"]).execution_options(
            preserve_rowcount=True
        )
    return _CLAIM[name]


def _upsert_stmt(conn: Connection):
    name = conn.dialect.name
    if name not in _UPSERT:
        ins = (
            _dialect(conn)
            .insert(_conv)
            .values(
                staff_id=bindparam("staff_id"),
                channel=bindparam("channel"),
                chat_id=bindparam("chat_id"),
                form=bindparam("form"),
                step=bindparam("step"),
                data=bindparam("data", type_=_conv.c.data.type),
                files=bindparam("files", type_=_conv.c.files.type),
                started_at=bindparam("now", type_=_conv.c.started_at.type),
                updated_at=bindparam("now2", type_=_conv.c.updated_at.type),
            )
        )
        ex = ins.excluded
        _UPSERT[name] = ins.on_conflict_do_update(
            index_elements=["staff_id"],
            set_={
                "channel": ex.channel,
                "chat_id": ex.chat_id,
                "form": ex.form,
                "step": ex.step,
                "data": ex.data,
                "files": ex.files,
                "updated_at": ex.updated_at,
            },
        )
    return _UPSERT[name]


def claim_message(conn: Connection, *, channel: str, message_id: str, now: datetime) -> bool:
    """Record the platform message; False if it was already processed (a redelivery)."""
    result = conn.execute(_claim_stmt(conn), {"channel": channel, "message_id": message_id[:128], "at": now})
    return result.rowcount == 1


_PRUNE = delete(_processed).where(_processed.c.processed_at < bindparam("before"))


def prune_processed(conn: Connection, *, before: datetime) -> int:
    return conn.execute(_PRUNE, {"before": before}).rowcount


_SENDER = (
    select(
        _staff.c.id,
        _staff.c.full_name,
        _staff.c.role,
        _staff.c.school_id,
        _staff.c.district_id,
        _staff.c.language,
        _staff.c.active,
        _school.c.level,
        _conv.c.channel,
        _conv.c.chat_id,
        _conv.c.form,
        _conv.c.step,
        _conv.c.data,
        _ident.c.id.label("ident_id"),
        _ident.c.blocked_at,
    )
    .select_from(
        _ident.join(_staff, _staff.c.id == _ident.c.staff_id)
        .outerjoin(_school, _school.c.id == _staff.c.school_id)
        .outerjoin(_conv, _conv.c.staff_id == _staff.c.id)
    )
    .where(_ident.c.channel == bindparam("channel"), _ident.c.external_id == bindparam("external_id"))
)


def load_sender(conn: Connection, *, channel: str, external_id: str) -> Sender | None:
    """The linked person behind a chat account with their form in progress, or None for an unknown account."""
    return _sender_from(conn.execute(_SENDER, {"channel": channel, "external_id": external_id}).first())


_PG_CLAIM_AND_LOAD: Any = None


def _pg_claim_and_load_stmt():
    """PostgreSQL: the dedupe insert, the sender and ``synchronous_commit off`` in one round trip (a data-
    modifying CTE). Each round trip to the server costs more than the statements themselves."""
    global _PG_CLAIM_AND_LOAD
    if _PG_CLAIM_AND_LOAD is None:
        claimed = (
            postgresql.insert(_processed)
            .values(channel=bindparam("channel"), message_id=bindparam("message_id"), processed_at=bindparam("at"))
            .on_conflict_do_nothing(index_elements=["channel", "message_id"])
            .returning(_processed.c.message_id)
            .cte("claimed")
        )
        sender = _SENDER.subquery("s")
        one = select(literal(1).label("x")).subquery("one")
        _PG_CLAIM_AND_LOAD = select(
            select(func.count()).select_from(claimed).scalar_subquery().label("fresh"),
            func.set_config("synchronous_commit", "off", True).label("sync"),
            *sender.c,
        ).select_from(one.outerjoin(sender, true()))
    return _PG_CLAIM_AND_LOAD


_UNBLOCK = update(_ident).where(_ident.c.id == bindparam("ident_id")).values(blocked_at=None)


def claim_and_load(
    conn: Connection, *, channel: str, message_id: str | None, external_id: str, now: datetime
) -> tuple[bool, Sender | None]:
    """Record the message (False: already processed) and read its sender, in as few round trips as the
    database allows. On PostgreSQL the transaction is left with ``synchronous_commit`` off: a step that
    writes records must call ``require_durable_commit`` (the engine does when a form opens an ORM session).

    A person who writes from a chat marked blocked (a delivery gave up on it) is reachable there again: the
    mark is lifted in this transaction, on every channel (one extra statement, only for a marked chat)."""
    if conn.dialect.name == "postgresql" and message_id:
        row = conn.execute(
            _pg_claim_and_load_stmt(),
            {"channel": channel, "message_id": message_id[:128], "at": now, "external_id": external_id},
        ).one()
        fresh, sender = row.fresh == 1, (_sender_from(row) if row.id is not None else None)
    elif message_id and not claim_message(conn, channel=channel, message_id=message_id, now=now):
        return False, None
    else:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        fresh, sender = True, load_sender(conn, channel=channel, external_id=external_id)
    if fresh and sender is not None and sender.blocked_identity is not None:
        conn.execute(_UNBLOCK, {"ident_id": sender.blocked_identity})
        sender.blocked_identity = None
    return fresh, sender


def require_durable_commit(conn: Connection) -> None:
    """Undo ``claim_and_load``'s relaxed commit for this transaction: it is about to write a record."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO ON")


def _sender_from(row) -> Sender | None:
    if row is None:
        return None
    person = Person(
        id=row.id,
        full_name=row.full_name,
        role=row.role,
        school_id=row.school_id,
        district_id=row.district_id,
        language=row.language or "vi",
        school_level=row.level,
    )
    conv = None
    if row.form is not None:
        conv = ConvRow(channel=row.channel, chat_id=row.chat_id, form=row.form, step=row.step, data=row.data or {})
    blocked = row.ident_id if row.blocked_at is not None else None
    return Sender(person=person, active=bool(row.active), conversation=conv, blocked_identity=blocked)


def save_conversation(
    conn: Connection,
    *,
    staff_id: int,
    channel: str,
    chat_id: str,
    form: str,
    step: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Upsert the person's one form in progress (one statement on both databases), with the photo files its
    answers hold, so the daily clean-up (``storage.evidence``) keeps them without reading form state."""
    conn.execute(
        _upsert_stmt(conn),
        {
            "staff_id": staff_id,
            "channel": channel,
            "chat_id": chat_id,
            "form": form,
            "step": step[:64],
            "data": data,
            "files": sorted(set(held_files(data))),
            "now": now,
            "now2": now,
        },
    )


def held_files(data: Any) -> Iterator[str]:
    """Every stored photo a form in progress remembers (answers, and photos collected in the current step):
    the form keeps them as ``storage.evidence.stored_photo_to_dict`` dicts, found by their ``sha256``."""
    if isinstance(data, dict):
        sha = data.get("sha256")
        if isinstance(sha, str):
            yield sha
        for value in data.values():
            yield from held_files(value)
    elif isinstance(data, list):
        for value in data:
            yield from held_files(value)


_DELETE_CONV = delete(_conv).where(_conv.c.staff_id == bindparam("staff_id"))


def delete_conversation(conn: Connection, *, staff_id: int) -> None:
    conn.execute(_DELETE_CONV, {"staff_id": staff_id})


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
