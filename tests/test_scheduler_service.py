"""The scheduler as `fieldbot run` starts it: jobs in the programme's time zone, catch-up at start, the lease,
and a shutdown that leaves unsent messages in the outbox."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.clock import FixedClock
from core.vocabulary import NotificationStatus
from scheduler import lease
from scheduler.delivery import Deliverer
from scheduler.service import SchedulerService, build_scheduler
from tests.factories import add_handover, link, local, rows
from tests.fakes.recording import RecordingSender


def seed(engine, programme, w):
    add_handover(
        engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 17),
        created_at=local(2021, 11, 17, 9),
    )
    for staff in (w.principal_a, w.teacher_a, w.principal_b, w.officer):
        link(engine, staff_id=staff, linked_at=local(2021, 11, 1))


async def test_start_schedules_jobs_and_catches_up_at_once(sqlite_engine, sqlite_world, programme):
    seed(sqlite_engine, programme, sqlite_world)
    tg = RecordingSender("telegram")
    service = build_scheduler(
        db=sqlite_engine,
        programme=programme,
        clock=FixedClock(local(2021, 11, 18, 7, 2)),
        senders={"telegram": tg},
        mailer=None,
        holder="test:1",
    )
    await service.start()
    try:
        jobs = {j.id: j.trigger for j in service.jobs}
        assert isinstance(jobs["sweep"], IntervalTrigger) and jobs["sweep"].interval == timedelta(minutes=5)
        assert isinstance(jobs["deliver"], IntervalTrigger) and jobs["deliver"].interval == timedelta(seconds=30)
        daily = jobs["daily-maintenance"]  # photo and export clean-up, SQLite's planner statistics
        assert {f.name: str(f) for f in daily.fields if f.name in ("hour", "minute")} == {"hour": "3", "minute": "30"}
        morning = jobs["morning"]
        assert isinstance(morning, CronTrigger) and str(morning.timezone) == "Asia/Ho_Chi_Minh"
        assert {f.name: str(f) for f in morning.fields if f.name in ("hour", "minute")} == {"hour": "7", "minute": "0"}
        await asyncio.wait_for(service.catch_up, 10)  # the catch-up sweep ran without waiting 5 minutes
        assert tg.texts(f"te{sqlite_world.principal_a}")
        assert lease.current_holder(sqlite_engine, now=local(2021, 11, 18, 7, 2)) == "test:1"
    finally:
        await service.shutdown()
    assert service.jobs == []
    assert lease.current_holder(sqlite_engine, now=local(2021, 11, 18, 7, 2)) is None  # handed over


async def test_a_second_process_stays_idle_while_the_first_holds_the_lease(sqlite_engine, sqlite_world, programme):
    seed(sqlite_engine, programme, sqlite_world)
    clock = FixedClock(local(2021, 11, 18, 7))
    first_tg, second_tg = RecordingSender("telegram"), RecordingSender("telegram")
    first = SchedulerService(
        db=sqlite_engine, programme=programme, clock=clock, senders={"telegram": first_tg}, mailer=None, holder="a"
    )
    second = SchedulerService(
        db=sqlite_engine, programme=programme, clock=clock, senders={"telegram": second_tg}, mailer=None, holder="b"
    )
    assert await first.run_cycle() is not None
    assert await second.run_cycle() is None and second_tg.sent == []
    clock.advance(timedelta(minutes=3))  # "a" died without a word: its lease runs out
    report = await second.run_cycle()
    assert report is not None and report.sweep.created == [] and second_tg.sent == []  # nothing sent twice


async def test_shutdown_mid_delivery_leaves_the_rest_pending(sqlite_engine, sqlite_world, programme):
    seed(sqlite_engine, programme, sqlite_world)
    release = asyncio.Event()
    started = asyncio.Event()

    class SlowSender(RecordingSender):
        async def send(self, chat_id, message):
            started.set()
            await release.wait()
            await super().send(chat_id, message)

    tg = SlowSender("telegram")
    clock = FixedClock(local(2021, 11, 18, 7))
    deliverer = Deliverer(db=sqlite_engine, programme=programme, clock=clock, senders={"telegram": tg}, concurrency=1)
    service = SchedulerService(
        db=sqlite_engine,
        programme=programme,
        clock=clock,
        senders={"telegram": tg},
        mailer=None,
        holder="a",
        deliverer=deliverer,
    )
    cycle = asyncio.create_task(service.run_cycle())
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(service.shutdown())
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(cycle, stopping), 10)
    statuses = [r.status for r in rows(sqlite_engine) if r.rule != "undeliverable"]
    assert len(tg.sent) == 1  # the message in flight was finished ...
    assert statuses.count(NotificationStatus.SENT) >= 1
    assert NotificationStatus.PENDING in statuses  # ... the others wait in the outbox for the next run


async def test_the_daily_job_refreshes_sqlites_planner_statistics(sqlite_engine, sqlite_world, programme):
    """Without statistics SQLite reads a province's pupils through the wrong index (storage.db.refresh_statistics);
    the lease holder's daily job keeps them."""
    from sqlalchemy import inspect, text

    seed(sqlite_engine, programme, sqlite_world)
    service = build_scheduler(
        db=sqlite_engine,
        programme=programme,
        clock=FixedClock(local(2021, 11, 18, 3, 30)),
        senders={},
        mailer=None,
        holder="test:1",
    )
    assert "sqlite_stat1" not in inspect(sqlite_engine).get_table_names()
    await service._cleanup_job()
    with sqlite_engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT tbl FROM sqlite_stat1"))}
    assert {"student", "handover", "school"} <= tables
