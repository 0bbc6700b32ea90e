"""The access log: every read of pupil data beyond a person's own entries, one row each (who, role, when, what,
which scope, how many pupils). Decree 13/2023/NĐ-CP asks the controller to keep a record of processing.

Append-only. This module has one writer, ``record_access``, and one remover, ``purge_before`` (the retention
purge); nothing updates a row. The database enforces it too: a trigger refuses UPDATE always and DELETE unless
the purge opened its gate in the same transaction — on PostgreSQL a transaction-local setting
(``SET LOCAL fieldbot.access_log_purge = 'on'``), on SQLite a row in ``access_log_purge_gate`` (SQLite has no
session settings). ``install_guard`` attaches the triggers to ``create_all`` and the migration runs the same DDL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DDL, delete, event, func, insert, select, text
from sqlmodel import Session, SQLModel

from storage.models import AccessLog, AccessLogPurgeGate, District, Province, School
from storage.scope import Scope

PURGE_SETTING = "fieldbot.access_log_purge"

# What was read (the ``what`` column).
SUMMARY = "summary"  # /tonghop
REVIEW = "review"  # /duyet: the principal reads the teachers' registrations
EXPORT = "export"  # /xuatfile (chat)
EXPORT_PROTECTED = "export_pw"  # /xuatfilemk: the same workbook, password-protected
EXPORT_CLI = "export_cli"  # fieldbot export
BACKUP = "backup"  # fieldbot backup: the whole database
ERASE = "erase"  # /xoahs or fieldbot students erase: scope names the code, no other data
PURGE = "purge"  # fieldbot purge
SEARCH = "search"  # /bangiao: a teacher searches the school's pupils by name or code
RESTORE = "restore"  # fieldbot restore: the whole database replaced from a backup
EXPORTS = (EXPORT, EXPORT_PROTECTED, EXPORT_CLI)

# --- the database guard ----------------------------------------------------------------------------------------

PG_GUARD = [
    f"""
CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('{PURGE_SETTING}', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'access_log is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql
""",
    "CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
    "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()",
]
PG_UNGUARD = [
    "DROP TRIGGER IF EXISTS access_log_append_only ON access_log",
    "DROP FUNCTION IF EXISTS access_log_append_only()",
]
SQLITE_GUARD = [
    "CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'access_log is append-only (UPDATE refused)'); END",
    "CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log "
    "WHEN NOT EXISTS (SELECT 1 FROM access_log_purge_gate) "
    "BEGIN SELECT RAISE(ABORT, 'access_log is append-only (DELETE refused)'); END",
]
SQLITE_UNGUARD = ["DROP TRIGGER IF EXISTS access_log_no_update", "DROP TRIGGER IF EXISTS access_log_no_delete"]


def install_guard() -> None:
    """Attach the triggers to ``create_all`` (tests, benchmarks); the migration issues the same statements."""
    table = AccessLog.__table__
    for stmt in PG_GUARD:
        event.listen(table, "after_create", DDL(stmt.replace("%", "%%")).execute_if(dialect="postgresql"))
    # The SQLite trigger reads the gate table: created once every table exists.
    for stmt in SQLITE_GUARD:
        event.listen(SQLModel.metadata, "after_create", DDL(stmt).execute_if(dialect="sqlite"))


install_guard()


# --- writing -------------------------------------------------------------------------------------------------


def _scope_label(session: Session, scope: Scope | str) -> tuple[str, int | None, int | None]:
    """(label, district_id, school_id) of a scope: codes, never names of people."""
    if isinstance(scope, str):
        return scope, None, None
    if scope.school_id is not None:
        school = session.get(School, scope.school_id)
        return f"school:{school.code if school else scope.school_id}", scope.district_id, scope.school_id
    if scope.district_id is None and scope.province_id is not None:
        province = session.get(Province, scope.province_id)
        return f"province:{province.code if province else scope.province_id}", None, None
    district = session.get(District, scope.district_id) if scope.district_id else None
    return f"district:{district.code if district else scope.district_id}", scope.district_id or None, None


def record_access(
    session: Session,
    *,
    actor: object,
    role: str,
    what: str,
    scope: Scope | str,
    pupils: int,
    now: datetime,
    district_id: int | None = None,
    school_id: int | None = None,
) -> AccessLog:
    """Append one row. ``actor``: a Staff row or the engine's Person (``id``, ``full_name``), or a string for
    the operator at the terminal (``"cli:<user>"``). ``scope``: a ``Scope`` (stored as the school's or the
    district's code) or a label such as ``"all"``. Runs in the caller's transaction: the read and its log
    row commit together."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    label, d_id, s_id = _scope_label(session, scope)
    if isinstance(actor, str):
        actor_id, actor_name = None, actor
    else:
        actor_id, actor_name = getattr(actor, "id", None), str(getattr(actor, "full_name", "") or actor_id)
    row = AccessLog(
        at=now,
        actor_id=actor_id,
        actor=actor_name[:120],
        role=str(role)[:20],
        what=what[:32],
        scope=label[:120],
        district_id=district_id if district_id is not None else d_id,
        school_id=school_id if school_id is not None else s_id,
        pupils=int(pupils),
    )
    session.add(row)
    session.flush()
    return row


# --- reading -------------------------------------------------------------------------------------------------


def entries(
    session: Session, *, since: datetime | None = None, school_id: int | None = None, limit: int | None = None
) -> list[AccessLog]:
    """Rows oldest first; ``school_id``: accesses to that school's data (a district-wide read counts too)."""
    q = select(AccessLog)
    if since is not None:
        q = q.where(AccessLog.at >= since)
    if school_id is not None:
        school = session.get(School, school_id)
        district_id = school.district_id if school else -1
        q = q.where(
            (AccessLog.school_id == school_id)
            | ((AccessLog.school_id.is_(None)) & (AccessLog.district_id == district_id))
        )
    q = q.order_by(AccessLog.at, AccessLog.id)
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))


@dataclass(frozen=True)
class ExportCount:
    actor: str
    role: str
    count: int


def exports_by_person(session: Session, *, district_id: int, since: datetime, until: datetime) -> list[ExportCount]:
    """Exports of this district's data in [since, until), by person, most first (the weekly digest line)."""
    rows = session.execute(
        select(AccessLog.actor, AccessLog.role, func.count())
        .where(
            AccessLog.what.in_(EXPORTS),
            AccessLog.district_id == district_id,
            AccessLog.at >= since,
            AccessLog.at < until,
        )
        .group_by(AccessLog.actor, AccessLog.role)
    ).all()
    counts = Counter({(a, r): n for a, r, n in rows})
    return [ExportCount(actor=a, role=r, count=n) for (a, r), n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


# --- the only removal ------------------------------------------------------------------------------------------


def purge_before(session: Session, *, before: datetime, dry_run: bool = False) -> int:
    """Remove rows older than ``before`` (the retention purge; nothing else deletes). Returns how many."""
    n = int(session.scalar(select(func.count()).select_from(AccessLog).where(AccessLog.at < before)) or 0)
    if dry_run or not n:
        return n
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text(f"SET LOCAL {PURGE_SETTING} = 'on'"))
        session.execute(delete(AccessLog).where(AccessLog.at < before))
        session.execute(text(f"SET LOCAL {PURGE_SETTING} = 'off'"))
    else:
        session.execute(insert(AccessLogPurgeGate).values(id=1))
        session.execute(delete(AccessLog).where(AccessLog.at < before))
        session.execute(delete(AccessLogPurgeGate))
    return n
