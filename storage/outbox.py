"""The notification outbox: rows recorded once under their key, read back for delivery.

Exactly once rests on the unique ``notification.key`` (``rule:subject:recipient:stage``): the sweep inserts
with ``ON CONFLICT (key) DO NOTHING`` in the same transaction that found the candidates, so two sweeps at
the same moment, or a sweep repeated after a crash, record each notification once; the deliverer only reads
rows, so a process killed between finding and delivering loses nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
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


def existing_keys(session: Session, keys: Iterable[str]) -> set[str]:
    keys = sorted(set(keys))
    found: set[str] = set()
    for chunk in batching.chunks(session, keys):
        found.update(
            session.execute(select(Notification.key).where(batching.any_of(session, Notification.key, chunk))).scalars()
        )
    return found


def insert_ignoring_duplicates(session: Session, rows: list[dict]) -> int:
    """INSERT ... ON CONFLICT (key) DO NOTHING on SQLite and PostgreSQL; returns how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    table = Notification.__table__
    inserted = 0
    for chunk in _chunks(rows):
        stmt = module.insert(table).values(chunk).on_conflict_do_nothing(index_elements=["key"])
        inserted += session.execute(stmt).rowcount or 0
    return inserted


def skip_stale(session: Session, *, rules: Iterable[str], current_keys: set[str], dry_run: bool = False) -> list[str]:
    """Pending rows of ``rules`` that no rule asks for any more (resolved, or superseded by a later stage):
    marked skipped, so a stale reminder is never sent late. Only pending rows are read: a handful."""
    rows = session.execute(
        select(Notification.id, Notification.key).where(
            Notification.status == NotificationStatus.PENDING, Notification.rule.in_(list(rules))
        )
    ).all()
    stale = [r for r in rows if r.key not in current_keys]
    if stale and not dry_run:
        for chunk in _chunks([r.id for r in stale]):
            session.execute(
                update(Notification)
                .where(Notification.id.in_(chunk), Notification.status == NotificationStatus.PENDING)
                .values(status=NotificationStatus.SKIPPED, last_error=SUPERSEDED)
            )
    return [r.key for r in stale]


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
