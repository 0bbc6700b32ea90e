"""One sweep: ask every rule what is due at ``now``, record what is new in the outbox, skip what is stale.

The sweep keeps no state of its own; everything is derived from the database at ``now``. Finding and
recording happen in one transaction, so a crash either records a candidate or leaves it to the next sweep.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from core.programme import Programme
from scheduler.context import Candidate, SweepContext
from scheduler.rules import RULES, Rule, title
from storage import outbox
from storage.db import session_scope

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    now: datetime
    found: list[Candidate] = field(default_factory=list)  # everything due now (new or already recorded)
    created: list[Candidate] = field(default_factory=list)  # recorded by this sweep (dry run: would be)
    superseded: list[str] = field(default_factory=list)  # keys of pending rows marked skipped
    dry_run: bool = False
    elapsed_ms: float = 0.0


def run_sweep(
    session, *, programme: Programme, now: datetime, rules: tuple[Rule, ...] = RULES, dry_run: bool = False
) -> SweepResult:
    """Within the caller's transaction."""
    started = time.perf_counter()
    ctx = SweepContext(session=session, programme=programme, now=now, rule_title=title)
    by_key: dict[str, Candidate] = {}
    swept = []
    for rule in rules:
        if rule.find is None:
            continue
        swept.append(rule.name)
        for c in rule.find(ctx):
            by_key.setdefault(c.key, c)  # a principal who also recorded the handover: one notification
    # Current = still worth sending by the time it can go out (after quiet hours).
    deliver_at = ctx.deliver_from(now)
    found = [c for c in by_key.values() if c.until is None or deliver_at < c.until]
    by_key = {c.key: c for c in found}
    existing = outbox.existing_keys(session, by_key)
    new = [c for c in found if c.key not in existing]
    if not dry_run and new:
        # Quiet hours: recorded now, delivered from the morning.
        outbox.insert_ignoring_duplicates(session, [c.row(now=now, deliver_at=deliver_at) for c in new])
    superseded = outbox.skip_stale(session, rules=swept, current_keys=set(by_key), dry_run=dry_run)
    result = SweepResult(
        now=now,
        found=found,
        created=new,
        superseded=superseded,
        dry_run=dry_run,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
    log.info(
        "sweep at=%s found=%d new=%d superseded=%d dry_run=%s ms=%.1f",
        now.isoformat(),
        len(found),
        len(new),
        len(superseded),
        dry_run,
        result.elapsed_ms,
    )
    return result


def sweep(
    engine: Engine, *, programme: Programme, now: datetime, dry_run: bool = False, rules: tuple[Rule, ...] = RULES
) -> SweepResult:
    """One sweep in its own transaction (a dry run rolls back)."""
    if dry_run:
        from sqlmodel import Session

        with Session(engine) as session:
            try:
                return run_sweep(session, programme=programme, now=now, rules=rules, dry_run=True)
            finally:
                session.rollback()
    with session_scope(engine) as session:
        return run_sweep(session, programme=programme, now=now, rules=rules)
