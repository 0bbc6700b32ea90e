"""A tick compares what is due with the outbox in the database (``storage.outbox.reconcile``), and renders only what
it records (``Candidate.body``): the two things that keep a steady national tick from re-reading and re-formatting
thousands of recorded items (bench/bench_national.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from core.i18n import T
from core.vocabulary import NotificationStatus
from scheduler.context import Candidate, Recipient
from scheduler.rules import Rule
from scheduler.sweep import sweep
from storage import outbox
from storage.db import session_scope
from storage.models import Notification
from tests.factories import local

NOW = local(2021, 11, 22, 10)


def _record(s, key: str, rule: str, status: NotificationStatus) -> None:
    s.add(
        Notification(
            key=key,
            rule=rule,
            subject="x",
            stage="remind",
            text="…",
            status=status,
            next_attempt_at=NOW,
            created_at=NOW,
        )
    )


def test_reconcile_names_the_new_keys_and_the_stale_pending_rows(db_engine):
    with session_scope(db_engine) as s:
        _record(s, "r1:a", "r1", NotificationStatus.PENDING)
        _record(s, "r1:b", "r1", NotificationStatus.SENT)
        _record(s, "r1:c", "r1", NotificationStatus.PENDING)
        _record(s, "r2:a", "r2", NotificationStatus.PENDING)  # a rule not swept: never stale here
    with session_scope(db_engine) as s:
        known = outbox.reconcile(s, keys=["r1:a", "r1:b", "r1:new", "r1:new"], rules=["r1"])
        assert known.new == {"r1:new"}
        assert [key for _, key in known.stale] == ["r1:c"]  # pending and no longer asked for; b was sent
        # Nothing due: every pending row of the swept rules is stale; an empty list is not a key.
        nothing = outbox.reconcile(s, keys=[], rules=["r1", "r2"])
        assert nothing.new == set()
        assert sorted(key for _, key in nothing.stale) == ["r1:a", "r1:c", "r2:a"]
        # Thousands of keys go as one parameter on both databases.
        many = [f"r1:k{i}" for i in range(5_000)] + ["r1:a"]
        assert len(outbox.reconcile(s, keys=many, rules=["r1"]).new) == 5_000
        outbox.skip(s, [row_id for row_id, _ in known.stale])
    with session_scope(db_engine) as s:
        assert outbox.reconcile(s, keys=["r1:a", "r1:b"], rules=["r1"]).stale == []
        c = s.exec(select(Notification).where(Notification.key == "r1:c")).one()
        assert c.status == NotificationStatus.SKIPPED and c.last_error == outbox.SUPERSEDED


def test_a_tick_renders_only_what_it_records(db_engine, world, programme):
    rendered: list[str] = []

    def body(n: int):
        def text() -> str:
            rendered.append(f"item {n}")
            return f"item {n}"

        return text

    def find(ctx):
        count = 3 if ctx.now < NOW + timedelta(minutes=7) else 4  # a fourth item falls due at the third tick
        who = Recipient(staff_id=world.principal_a)
        return [Candidate("probe", f"student:{n}", who, "remind", NOW, body(n)) for n in range(count)]

    rules = (Rule(name="probe", title=T(vi="Thử", en="Probe"), find=find),)
    first = sweep(db_engine, programme=programme, now=NOW, rules=rules)
    assert len(first.created) == 3 and sorted(rendered) == ["item 0", "item 1", "item 2"]
    assert [c.line for c in first.created] == [c.body for c in first.created]  # recorded as rendered text

    rendered.clear()
    steady = sweep(db_engine, programme=programme, now=NOW + timedelta(minutes=5), rules=rules)
    assert len(steady.found) == 3 and steady.created == [] and rendered == []

    third = sweep(db_engine, programme=programme, now=NOW + timedelta(minutes=10), rules=rules)
    assert [c.subject for c in third.created] == ["student:3"] and rendered == ["item 3"]
    with session_scope(db_engine) as s:
        assert s.exec(select(Notification.text).where(Notification.key == third.created[0].key)).one() == "item 3"
