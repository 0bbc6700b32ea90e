"""The per-message fast path: dedupe, who is writing, their form in progress — SQLAlchemy Core, one
transaction per message.

Every message runs these statements, so they avoid the ORM's identity map and unit of work (DESIGN.md:
an ORM get/flush/commit per message is ~600 updates/s; these Core statements keep the whole step well
above 1,000/s on SQLite). Records that a form finally writes still use the ORM: that happens once per form.

There is deliberately no in-process cache of identity -> person: the one indexed join below reads the
person's ``active`` flag fresh on every message, so a deactivation in the roster takes effect on the very
next message and there is no cache to invalidate across processes.

Several processes (webhook workers) may handle one person's messages at the same moment. Each step is
serialised per chat account (docs/scaling.md):

* PostgreSQL: the step's first statement takes a transaction-level advisory lock keyed on the chat account
  (and the schema), waiting at most ``lock_timeout_ms``; the next statement then reads the person's form
  with a snapshot taken *after* the lock, so it sees what the previous step committed. Past the wait,
  ``PersonBusy`` is raised and the message is left unclaimed (nothing of it was stored).
* SQLite: the first statement of a step is the dedupe INSERT, which takes the database's single write lock
  (other writers wait ``busy_timeout``; past it, the general apology: the other writer may be anyone).

Ordering: ``chat_identity.last_seq`` holds the newest ``Incoming.seq`` applied; the same statement that reads
the person moves it forward and returns the old value, so the engine can refuse an older message that
arrives after a newer one was applied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, delete, func, literal, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

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
    last_seq: int | None = None  # the newest message order applied before this message
    blocked_identity: int | None = None  # the chat identity written from, when it is marked blocked


class PersonBusy(Exception):
    """Another process kept this person's step locked longer than the bounded wait."""


class ConnectionLost(Exception):
    """The pooled connection was dead at the step's first statement (the server restarted or ended it since
    it was last used): nothing ran, so the step can start again on a fresh connection."""


DEFAULT_LOCK_TIMEOUT_MS = 5000
# Test only: take the per-person lock out, to prove the multi-worker test fails without it.
_LOCK_DISABLED = os.environ.get("FIELDBOT_TEST_NO_STEP_LOCK") == "1"


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
        _staff.c.province_id,
        _staff.c.language,
        _staff.c.active,
        _ident.c.last_seq,
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
    .where(_ident.c.channel == bindparam("who_channel"), _ident.c.external_id == bindparam("who_external_id"))
)


def load_sender(conn: Connection, *, channel: str, external_id: str) -> Sender | None:
    """The linked person behind a chat account with their form in progress, or None for an unknown account."""
    return _sender_from(conn.execute(_SENDER, {"who_channel": channel, "who_external_id": external_id}).first())


_PG_CLAIM_AND_LOAD: Any = None


def _pg_claim_and_load_stmt():
    """PostgreSQL: the dedupe insert, the sender and ``synchronous_commit off`` in one round trip (a data-
    modifying CTE). Each round trip to the server costs more than the statements themselves."""
    global _PG_CLAIM_AND_LOAD
    if _PG_CLAIM_AND_LOAD is None:
        claimed = (
            postgresql.insert(_processed)
            .values(channel=bindparam("who_channel"), message_id=bindparam("message_id"), processed_at=bindparam("at"))
            .on_conflict_do_nothing(index_elements=["channel", "message_id"])
            .returning(_processed.c.message_id)
            .cte("claimed")
        )
        seq = bindparam("seq", type_=BigInteger)
        moved = (
            update(_ident)
            .where(
                _ident.c.channel == bindparam("who_channel"),
                _ident.c.external_id == bindparam("who_external_id"),
                seq.isnot(None),
                or_(_ident.c.last_seq.is_(None), _ident.c.last_seq < seq),
            )
            .values(last_seq=seq)
            .returning(_ident.c.id)
            .cte("moved")
        )
        sender = _SENDER.subquery("s")
        one = select(literal(1).label("x")).subquery("one")
        _PG_CLAIM_AND_LOAD = select(
            select(func.count()).select_from(claimed).scalar_subquery().label("fresh"),
            select(func.count()).select_from(moved).scalar_subquery().label("moved"),
            *sender.c,
        ).select_from(one.outerjoin(sender, true()))
    return _PG_CLAIM_AND_LOAD


# One round trip before the read: the bounded wait, the relaxed commit, then the lock itself (the select list
# is evaluated left to right). Keyed on the schema too, so deployments sharing a database do not contend.
_PG_LOCK = text(
    "SELECT set_config('lock_timeout', :timeout, true), set_config('synchronous_commit', 'off', true), "
    "pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || :who, 0))"
)
_PG_RELAX = text("SELECT set_config('synchronous_commit', 'off', true)")

_MOVE_SEQ = (
    update(_ident)
    .where(
        _ident.c.channel == bindparam("who_channel"),
        _ident.c.external_id == bindparam("who_external_id"),
        or_(_ident.c.last_seq.is_(None), _ident.c.last_seq < bindparam("seq", type_=BigInteger)),
    )
    .values(last_seq=bindparam("seq", type_=BigInteger))
)


def lock_person(conn: Connection, *, channel: str, external_id: str, timeout_ms: int) -> None:
    """PostgreSQL: wait (at most ``timeout_ms``) until no other transaction steps this chat account, and hold
    it until this transaction ends. ``PersonBusy`` past the wait. Also relaxes this transaction's commit."""
    if _LOCK_DISABLED:
        conn.execute(_PG_RELAX)
        return
    try:
        conn.execute(_PG_LOCK, {"timeout": f"{int(timeout_ms)}ms", "who": f"{channel}:{external_id}"})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise PersonBusy(f"{channel}:{external_id}") from None
        raise


_UNBLOCK = update(_ident).where(_ident.c.id == bindparam("ident_id")).values(blocked_at=None)


def claim_and_load(
    conn: Connection,
    *,
    channel: str,
    message_id: str | None,
    external_id: str,
    now: datetime,
    seq: int | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> tuple[bool, Sender | None]:
    """``_claim_and_load``, then: a person who writes from a chat marked blocked (a delivery gave up on it) is
    reachable there again, so the mark is lifted in this transaction, on every channel (one extra statement,
    only for a marked chat). ``ConnectionLost`` when the connection turned out dead at the first statement."""
    try:
        fresh, sender = _claim_and_load(
            conn,
            channel=channel,
            message_id=message_id,
            external_id=external_id,
            now=now,
            seq=seq,
            lock_timeout_ms=lock_timeout_ms,
        )
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ConnectionLost(str(exc.orig).strip().splitlines()[0] if exc.orig else "connection lost") from exc
        raise
    if fresh and sender is not None and sender.blocked_identity is not None:
        conn.execute(_UNBLOCK, {"ident_id": sender.blocked_identity})
        sender.blocked_identity = None
    return fresh, sender


def _claim_and_load(
    conn: Connection,
    *,
    channel: str,
    message_id: str | None,
    external_id: str,
    now: datetime,
    seq: int | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> tuple[bool, Sender | None]:
    """Lock the chat account's step (see the module doc), record the message (False: already processed) and
    read its sender with the order of the newest message applied before this one, moving it to ``seq``.
    On PostgreSQL the transaction is left with ``synchronous_commit`` off: a step that writes records must
    commit durably (``commit_step(durable=True)`` or ``require_durable_commit``; the engine does when a
    statement other than a SELECT ran through a form's ORM session)."""
    if conn.dialect.name == "postgresql" and message_id and conn.dialect.driver == "psycopg":
        return _pg_pipelined(
            conn,
            channel=channel,
            external_id=external_id,
            message_id=message_id,
            now=now,
            seq=seq,
            lock_timeout_ms=lock_timeout_ms,
        )
    if conn.dialect.name == "postgresql":
        lock_person(conn, channel=channel, external_id=external_id, timeout_ms=lock_timeout_ms)
        if message_id:
            row = conn.execute(
                _pg_claim_and_load_stmt(),
                {
                    # Parameters are not named like columns: in a statement holding an UPDATE, SQLAlchemy
                    # turns parameters named like the table's columns into extra SETs.
                    "who_channel": channel,
                    "who_external_id": external_id,
                    "message_id": message_id[:128],
                    "at": now,
                    "seq": seq,
                },
            ).one()
            return row.fresh == 1, (_sender_from(row) if row.id is not None else None)
    elif message_id:
        # SQLite: this INSERT takes the database's one write lock, which serialises steps across processes.
        # Past busy_timeout the error is the general apology (the writer may be anyone: a backup, an import).
        fresh = claim_message(conn, channel=channel, message_id=message_id, now=now)
        if not fresh:
            return False, None
    sender = load_sender(conn, channel=channel, external_id=external_id)
    if sender is not None and seq is not None and (sender.last_seq is None or sender.last_seq < seq):
        conn.execute(_MOVE_SEQ, {"who_channel": channel, "who_external_id": external_id, "seq": seq})
    return True, sender


_PG_SQL: dict[str, Any] = {}


def _pg_pipelined(
    conn: Connection,
    *,
    channel: str,
    external_id: str,
    message_id: str,
    now: datetime,
    seq: int | None,
    lock_timeout_ms: int,
) -> tuple[bool, Sender | None]:
    """PostgreSQL with psycopg: BEGIN, the lock and the claim-and-load statement sent in one pipeline, so the
    step waits for the server once instead of three times. The server still runs them one after the other:
    the claim-and-load snapshot is taken after the lock is granted. psycopg prepares both statements on the
    server after a few executions on a connection (``prepare_threshold``), so they are not parsed again."""
    import psycopg
    from psycopg.rows import namedtuple_row

    if "claim" not in _PG_SQL:
        compiled = _pg_claim_and_load_stmt().compile(dialect=conn.dialect)
        _PG_SQL["claim"] = (compiled.string, compiled)
        lock = "SELECT set_config('lock_timeout', %(timeout)s, true), set_config('synchronous_commit', 'off', true)"
        _PG_SQL["lock"] = lock + (
            "" if _LOCK_DISABLED else ", pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || %(who)s, 0))"
        )
    claim_sql, compiled = _PG_SQL["claim"]
    params = compiled.construct_params(
        {
            "who_channel": channel,
            "who_external_id": external_id,
            "message_id": message_id[:128],
            "at": now,
            "seq": seq,
        }
    )
    raw = conn.connection.driver_connection
    try:
        with raw.cursor() as lock_cur, raw.cursor(row_factory=namedtuple_row) as cur:
            # Nothing is read inside the pipeline: its closing Sync sends both statements and brings both
            # results back in a single round trip (reading inside would cost a second one).
            with raw.pipeline():
                lock_cur.execute(
                    _PG_SQL["lock"], {"timeout": f"{int(lock_timeout_ms)}ms", "who": f"{channel}:{external_id}"}
                )
                cur.execute(claim_sql, params)
            row = cur.fetchone()
    except psycopg.errors.LockNotAvailable:
        raise PersonBusy(f"{channel}:{external_id}") from None
    except psycopg.OperationalError as exc:
        if raw.broken:  # the server went away: let the pool forget this connection
            conn.invalidate()
            raise ConnectionLost(str(exc).strip().splitlines()[0] if str(exc) else "connection lost") from exc
        raise
    return row.fresh == 1, (_sender_from(row) if row.id is not None else None)


_DURABLE = "SET LOCAL synchronous_commit TO ON"


def require_durable_commit(conn: Connection) -> None:
    """Undo ``claim_and_load``'s relaxed commit for this transaction: it wrote a record."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_DURABLE)


def _sender_from(row) -> Sender | None:
    if row is None:
        return None
    person = Person(
        id=row.id,
        full_name=row.full_name,
        role=row.role,
        school_id=row.school_id,
        district_id=row.district_id,
        province_id=row.province_id,
        language=row.language or "vi",
        school_level=row.level,
    )
    conv = None
    if row.form is not None:
        conv = ConvRow(channel=row.channel, chat_id=row.chat_id, form=row.form, step=row.step, data=row.data or {})
    blocked = row.ident_id if row.blocked_at is not None else None
    return Sender(
        person=person, active=bool(row.active), conversation=conv, last_seq=row.last_seq, blocked_identity=blocked
    )


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
        _upsert_params(
            dict(staff_id=staff_id, channel=channel, chat_id=chat_id, form=form, step=step, data=data, now=now)
        ),
    )


def _upsert_params(save: dict[str, Any], json: Any = None) -> dict[str, Any]:
    """``json``: psycopg's ``Json`` when the parameters go to the driver directly (no SQLAlchemy type to
    encode the JSON columns)."""
    wrap = json or (lambda value: value)
    return {
        "staff_id": save["staff_id"],
        "channel": save["channel"],
        "chat_id": save["chat_id"],
        "form": save["form"],
        "step": save["step"][:64],
        "data": wrap(save["data"]),
        "files": wrap(sorted(set(held_files(save["data"])))),
        "now": save["now"],
        "now2": save["now"],
    }


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


def commit_step(conn: Connection, *, save: dict[str, Any] | None, delete_staff_id: int | None, durable: bool) -> None:
    """What the step left to write — the progress upsert, or the finished form's delete — and, when the step
    wrote a record, a durable commit. PostgreSQL with psycopg: all of it and COMMIT in one pipeline (one wait
    for the server instead of up to three), so the caller's SQLAlchemy commit that follows finds nothing left
    to do; elsewhere one statement at a time, and the caller's commit commits.

    ``synchronous_commit`` is read by the server when the transaction commits, so setting it just before
    COMMIT makes that commit wait for the disk exactly as setting it earlier in the step would."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        if durable:
            require_durable_commit(conn)
        if save is not None:
            save_conversation(conn, **save)
        elif delete_staff_id is not None:
            delete_conversation(conn, staff_id=delete_staff_id)
        return
    from psycopg.types.json import Json

    if "upsert" not in _PG_SQL:
        compiled = _upsert_stmt(conn).compile(dialect=conn.dialect)
        _PG_SQL["upsert"] = (compiled.string, compiled)
        compiled = _DELETE_CONV.compile(dialect=conn.dialect)
        _PG_SQL["delete"] = (compiled.string, compiled)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, raw.pipeline():
        if durable:
            cur.execute(_DURABLE)
        if save is not None:
            sql, compiled = _PG_SQL["upsert"]
            cur.execute(sql, compiled.construct_params(_upsert_params(save, json=Json)))
        elif delete_staff_id is not None:
            sql, compiled = _PG_SQL["delete"]
            cur.execute(sql, compiled.construct_params({"staff_id": delete_staff_id}))
        # COMMIT as a statement in the same batch (``raw.commit()`` would sync the pipeline on its own);
        # psycopg reads the transaction state from the server's answer, so it knows the transaction ended.
        cur.execute("COMMIT")


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
