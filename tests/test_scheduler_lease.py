"""One sweeper at a time: the lease row, and two real processes racing on one PostgreSQL schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from scheduler import lease
from storage.db import create_all, make_engine
from tests.factories import add_handover, link, local, rows, seed_world

ROOT = Path(__file__).resolve().parents[1]
TTL = timedelta(minutes=2)


def test_lease_one_holder_renewal_expiry_release(db_engine):
    t0 = local(2021, 11, 18, 7)
    assert lease.try_acquire(db_engine, holder="a", now=t0, ttl=TTL)
    assert not lease.try_acquire(db_engine, holder="b", now=t0, ttl=TTL)
    assert lease.try_acquire(db_engine, holder="a", now=t0 + timedelta(minutes=1), ttl=TTL)  # renewal
    assert not lease.try_acquire(db_engine, holder="b", now=t0 + timedelta(minutes=2), ttl=TTL)  # renewed
    assert lease.current_holder(db_engine, now=t0 + timedelta(minutes=2)) == "a"
    # "a" died: once its lease has expired, "b" takes over, and "a" cannot take it back.
    assert lease.try_acquire(db_engine, holder="b", now=t0 + timedelta(minutes=3, seconds=1), ttl=TTL)
    assert not lease.try_acquire(db_engine, holder="a", now=t0 + timedelta(minutes=3, seconds=2), ttl=TTL)
    # A clean shutdown hands it over at once.
    lease.release(db_engine, holder="b")
    assert lease.current_holder(db_engine, now=t0 + timedelta(minutes=3, seconds=3)) is None
    assert lease.try_acquire(db_engine, holder="a", now=t0 + timedelta(minutes=3, seconds=3), ttl=TTL)


WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from core.clock import FixedClock
    from core.programme import load_programme
    from bot.settings import DEFAULT_PROGRAMME
    from scheduler.service import SchedulerService
    from storage.db import make_engine
    from tests.factories import local
    from tests.fakes.recording import RecordingSender

    url, holder = sys.argv[1], sys.argv[2]
    engine = make_engine(url)
    tg = RecordingSender("telegram")
    service = SchedulerService(db=engine, programme=load_programme(DEFAULT_PROGRAMME),
                               clock=FixedClock(local(2021, 11, 18, 7)), senders={"telegram": tg},
                               mailer=None, holder=holder)
    engine.connect().close()  # connected before the start signal, so both start the race together
    print("ready", flush=True)
    sys.stdin.readline()
    report = asyncio.run(service.run_cycle())
    print(json.dumps({"holder": holder, "ran": report is not None,
                      "created": len(report.sweep.created) if report else 0, "sent": tg.sent}), flush=True)
""")


@pytest.mark.slow
def test_two_processes_only_one_sweeps_and_delivers(pg_schema_url, programme):
    engine = make_engine(pg_schema_url)
    create_all(engine)
    w = seed_world(engine, now=local(2021, 11, 17, 8))
    for name in ("Trần Thị Bích", "Lê Văn Cường"):
        add_handover(
            engine,
            programme,
            school_id=w.school_a,
            recorded_by=w.teacher_a,
            handed_over_on=date(2021, 11, 17),
            created_at=local(2021, 11, 17, 9),
            name=name,
        )
    for staff in (w.principal_a, w.teacher_a, w.principal_b, w.principal_other, w.officer, w.other_officer):
        link(engine, staff_id=staff, linked_at=local(2021, 11, 1))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, pg_schema_url, name],
            cwd=ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("host-a:1", "host-b:2")
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:  # go
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    ran = [r for r in results if r["ran"]]
    idle = [r for r in results if not r["ran"]]
    assert len(ran) == 1 and len(idle) == 1 and idle[0]["sent"] == []
    winner = ran[0]
    recorded = rows(engine)
    assert winner["created"] == len(recorded) > 0
    chats = [chat for chat, _ in winner["sent"]]
    assert len(chats) == len(set(chats))  # each person one message, sent by one process
    assert {r.status for r in recorded} == {"sent"}
    assert lease.current_holder(engine, now=local(2021, 11, 18, 7)) == winner["holder"]
    engine.dispose()
