"""The notification outbox: rows recorded once under their key, read back for delivery.

Exactly once rests on the unique ``notification.key`` (``rule:subject:recipient:stage``): the sweep inserts
with ``ON CONFLICT (key) DO NOTHING`` in the same transaction that found the candidates, so two sweeps at
the same moment, or a sweep repeated after a crash, record each notification once; the deliverer only reads
rows, so a process killed between finding and delivering loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.vocabulary import NotificationStatus
from storage import batching
from storage.models import Notification

CHUNK = 500
SUPERSEDED = "superseded: no longer due, or replaced by a later stage"


def _chunks(items: Sequence, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_ignoring_duplicates(session: Session, rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT (key) DO NOTHING on SQLite and PostgreSQL, as one statement run for every row
    (psycopg sends them pipelined): the first sweep of a national morning records ~4,000 rows, and compiling
    them into 500-row VALUES lists took most of its second."""
    if not rows:
        return
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = module.insert(Notification.__table__).on_conflict_do_nothing(index_elements=["key"])
    session.connection().execute(stmt, rows)


@dataclass(frozen=True, slots=True)
class Reconciled:
    new: set[str]  # keys asked for that are not recorded yet
    stale: list[tuple[int, str]]  # (id, key) of pending rows of the rules that nothing asks for any more


# What a sweep asks the outbox, in one statement: which of the keys due now are new, and which pending rows of
# the swept rules are no longer due. The comparison runs in the database, so a tick where everything is recorded
# already (every tick but the first of the day) reads back nothing instead of every key twice.
_RECONCILE = """
WITH current_keys(k) AS ({keys})
SELECT NULL AS id, c.k AS key FROM current_keys c
 WHERE NOT EXISTS (SELECT 1 FROM notification n WHERE n.key = c.k)
UNION ALL
SELECT n.id, n.key FROM notification n
 WHERE n.status = :pending AND n.rule IN ({rules}) AND n.key NOT IN (SELECT k FROM current_keys)
"""
# The lists go as one string: lines split by PostgreSQL (a text parameter is sent as it is, where an array of
# 4,000 keys costs psycopg a regular-expression check a key), a JSON array on SQLite. Keys never hold a line
# break (``rule:subject:recipient:stage``). ``NOT IN (SELECT ...)`` is a hash of the keys on both (PostgreSQL's
# hashed subplan, SQLite's temporary index) whatever the statistics say.
_RECONCILE_SQL = {
    "postgresql": _RECONCILE.format(
        keys="SELECT unnest(string_to_array(CAST(:keys AS text), chr(10)))",
        rules="SELECT unnest(string_to_array(CAST(:rules AS text), chr(10)))",
    ),
    "sqlite": _RECONCILE.format(keys="SELECT value FROM json_each(:keys)", rules="SELECT value FROM json_each(:rules)"),
}


def reconcile(session: Session, *, keys: Collection[str], rules: Iterable[str]) -> Reconciled:
    """Compare what is due now (``keys``, from ``rules``) with what the outbox holds."""
    dialect = session.get_bind().dialect.name
    pack = "\n".join if dialect == "postgresql" else json.dumps
    params = {"keys": pack(list(keys)), "rules": pack(sorted(set(rules))), "pending": NotificationStatus.PENDING}
    rows = session.execute(text(_RECONCILE_SQL[dialect]), params).all()
    return Reconciled(
        new={r.key for r in rows if r.id is None}, stale=[(r.id, r.key) for r in rows if r.id is not None]
    )


def skip(session: Session, ids: Sequence[int]) -> None:
    """Mark pending rows skipped as superseded (``Reconciled.stale``): a stale reminder is never sent late."""
    for chunk in batching.chunks(session, ids):
        session.execute(
            update(Notification)
            .where(batching.any_of(session, Notification.id, chunk), Notification.status == NotificationStatus.PENDING)
            .values(status=NotificationStatus.SKIPPED, last_error=SUPERSEDED)
        )


def _unclaimed(real_now: datetime | None):
    if real_now is None:
        return Notification.claimed_until.is_(None)
    return or_(Notification.claimed_until.is_(None), Notification.claimed_until <= real_now)


def due_rows(
    session: Session,
    *,
    now: datetime,
    limit: int,
    recipient_id: int | None = None,
    rule: str | None = None,
    real_now: datetime | None = None,
) -> list[Notification]:
    """Pending rows due at ``now`` and not claimed by a live deliverer at ``real_now``, oldest first; only one
    person's when ``recipient_id`` is given (the console shows its person's messages at each prompt), only one
    rule's with ``rule`` (the notices a step queued)."""
    query = select(Notification).where(
        Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now, _unclaimed(real_now)
    )
    if recipient_id is not None:
        query = query.where(Notification.recipient_id == recipient_id)
    if rule is not None:
        query = query.where(Notification.rule == rule)
    return list(session.execute(query.order_by(Notification.next_attempt_at, Notification.id).limit(limit)).scalars())


def claim(session: Session, *, ids: Sequence[int], real_now: datetime, until: datetime) -> set[int]:
    """Take rows for sending: of ``ids``, those still pending and not claimed by a live deliverer are marked
    claimed until ``until`` and returned.

    Whoever claims a row sends it (and clears the claim when it records the outcome); anyone else skips it.
    Two deliverers (the scheduler's and a worker's, woken by its own step) can therefore never send one row
    twice, and a deliverer killed after claiming only delays the row until ``until``. Claims are in real
    time, apart from the due time: `fieldbot sweep --now` delivers at a frozen moment, and a claim must still
    lapse."""
    taken: set[int] = set()
    for chunk in _chunks(sorted(set(ids))):
        taken.update(
            session.execute(
                update(Notification)
                .where(
                    Notification.id.in_(chunk),
                    Notification.status == NotificationStatus.PENDING,
                    _unclaimed(real_now),
                )
                .values(claimed_until=until)
                .returning(Notification.id)
            ).scalars()
        )
    return taken


NOTICE = "notice"  # the rule name of a message one person's step sends another (approved, rejected, flagged ...)


def queue_notice(session: Session, *, recipient_id: int, text: str, now: datetime, origin: str) -> None:
    """Record a message for another person in the caller's transaction: it goes out only if the step that
    caused it commits, and a crash after the commit cannot lose it (the deliverer finds it pending).
    ``origin`` (channel and platform message id, plus a counter) makes the key, so a redelivered update that
    slipped past the dedupe still queues nothing twice."""
    stage = hashlib.sha1(origin.encode()).hexdigest()[:16]  # one message per notice: never merged with another
    insert_ignoring_duplicates(
        session,
        [
            dict(
                key=f"{NOTICE}:{stage}:{recipient_id}",
                rule=NOTICE,
                subject=origin[:64],
                stage=stage,
                recipient_id=recipient_id,
                email=None,
                text=text,
                status=NotificationStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        ],
    )
