"""One sweeper at a time across processes that share a database: a lease row.

The lease is taken or renewed with one atomic statement (``UPDATE ... WHERE expires_at < now OR holder =
me``), or created with an insert that loses cleanly when another process created it first. The holder keeps
renewing while it works; if it dies, the lease expires and another process takes over. A lease (not a
PostgreSQL advisory lock) so that SQLite deployments and PostgreSQL behave the same.

Lease times come from their own clock: ``fieldbot sweep --now 2030-...`` simulates a date for the rules
but must not hold the lease until 2030.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from storage.models import Lease

SWEEPER = "sweeper"


def try_acquire(engine: Engine, *, name: str = SWEEPER, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; True if ``holder`` holds it until ``now + ttl``."""
    expires = now + ttl
    table = Lease.__table__
    with engine.begin() as conn:
        taken = conn.execute(
            update(table)
            .where(table.c.name == name, or_(table.c.expires_at < now, table.c.holder == holder))
            .values(holder=holder, expires_at=expires)
        ).rowcount
    if taken:
        return True
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(name=name, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        return False  # someone else holds it (or created it a moment ago)


def release(engine: Engine, *, name: str = SWEEPER, holder: str) -> None:
    """Give the lease up so another process need not wait for it to expire."""
    table = Lease.__table__
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.name == name, table.c.holder == holder))


def current_holder(engine: Engine, *, name: str = SWEEPER, now: datetime) -> str | None:
    table = Lease.__table__
    with engine.connect() as conn:
        row = conn.execute(select(table.c.holder, table.c.expires_at).where(table.c.name == name)).first()
    if row is None or row.expires_at < now:
        return None
    return row.holder
