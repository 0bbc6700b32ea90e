"""The scheduler inside `fieldbot run`: APScheduler triggers, the database decides.

Three jobs on an ``AsyncIOScheduler`` in the programme's time zone:

- ``sweep`` every ``[reminders] sweep_minutes``, and once right at start (the catch-up after downtime:
  what was missed is derived from the database; a reminder whose day has passed is superseded, not sent);
- ``morning`` at ``[reminders] morning`` (07:00): the same cycle, so the digest and the morning reminders
  go out on the minute instead of up to one interval late;
- ``deliver`` every 30 seconds: retries and messages held by quiet hours go out without waiting for a sweep
  (a notice a step queues goes out at once through ``scheduler.delivery.Waker``, in every process).

Each cycle first takes (or renews) the sweeper lease: with two processes on one database, only the holder
sweeps and delivers; the other stays idle and takes over when the lease expires. APScheduler only says
*when* to look; *what* is due comes from the database at ``clock.now()``, so a missed or doubled trigger
changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from core.clock import Clock
from core.ports import ChannelSender, Mailer
from core.programme import Programme
from scheduler import lease
from scheduler.delivery import Deliverer, DeliveryReport
from scheduler.sweep import SweepResult, sweep

log = logging.getLogger(__name__)

DELIVER_EVERY = timedelta(seconds=30)


ORPHAN_PHOTO_AGE = timedelta(days=1)


@dataclass
class CycleReport:
    sweep: SweepResult | None
    delivery: DeliveryReport


class SchedulerService:
    def __init__(
        self,
        *,
        db: Engine,
        programme: Programme,
        clock: Clock,
        senders: Mapping[str, ChannelSender],
        mailer: Mailer | None,
        holder: str,
        lease_clock: Clock | None = None,
        lease_ttl: timedelta = timedelta(minutes=2),
        deliver_every: timedelta = DELIVER_EVERY,
        deliverer: Deliverer | None = None,
        photos=None,  # storage.photos.PhotoStore: its orphan files are cleaned up once a day
    ) -> None:
        self.photos = photos
        self.db = db
        self.programme = programme
        self.clock = clock
        self.lease_clock = lease_clock or clock  # `fieldbot sweep --now` passes the real clock here
        self.holder = holder
        self.lease_ttl = lease_ttl
        self.deliver_every = deliver_every
        self.deliverer = deliverer or Deliverer(
            db=db,
            programme=programme,
            clock=clock,
            senders=senders,
            mailer=mailer,
            claim_ttl=lease_ttl,
            claim_clock=self.lease_clock,
        )
        self._lock = asyncio.Lock()
        self._scheduler: AsyncIOScheduler | None = None
        self.catch_up: asyncio.Task | None = None
        self._closed = False

    # --- one cycle ----------------------------------------------------------------------------------------------

    async def hold_lease(self) -> bool:
        return await asyncio.to_thread(
            lease.try_acquire, self.db, holder=self.holder, now=self.lease_clock.now(), ttl=self.lease_ttl
        )

    async def run_cycle(self, *, do_sweep: bool = True, deliver: bool = True) -> CycleReport | None:
        """Sweep (optional) and deliver, if this process holds the lease; None when another one does."""
        async with self._lock:
            if self._closed or not await self.hold_lease():
                log.debug("another process holds the sweeper lease; idle")
                return None
            result = None
            if do_sweep:
                # The sweep is synchronous database work: off the event loop, so chats stay responsive.
                result = await asyncio.to_thread(sweep, self.db, programme=self.programme, now=self.clock.now())
            delivery = await self.deliverer.deliver_due(keep_going=self.hold_lease) if deliver else DeliveryReport()
            if delivery.groups:
                log.info(
                    "delivered messages=%d sent=%d retrying=%d failed=%d",
                    delivery.messages,
                    delivery.rows_sent,
                    delivery.rows_retrying,
                    delivery.rows_failed,
                )
            return CycleReport(sweep=result, delivery=delivery)

    async def _job(self, do_sweep: bool) -> None:
        try:
            await self.run_cycle(do_sweep=do_sweep)
        except Exception:  # the next trigger tries again; nothing is lost, the outbox is in the database
            log.exception("scheduler cycle failed")

    async def clean_photo_files(self) -> int:
        """Photo files no row and no form in progress names (handovers cancelled after their photos came):
        removed once they are a day old, by the lease holder only."""
        if self.photos is None or not await self.hold_lease():
            return 0
        from sqlmodel import Session

        from storage.evidence import discard_orphan_files

        def run() -> int:
            with Session(self.db) as session:
                return discard_orphan_files(session, store=self.photos, older_than=self.clock.now() - ORPHAN_PHOTO_AGE)

        removed = await asyncio.to_thread(run)
        if removed:
            log.info("removed %d orphan photo file(s)", removed)
        await asyncio.to_thread(self._clean_minutes_files)
        return removed

    def _clean_minutes_files(self) -> None:
        """Minutes PDFs made for a chat are sent at once and can be made again: gone after a day."""
        from reports.minutes import prune_files

        cutoff = (self.clock.now() - ORPHAN_PHOTO_AGE).timestamp()
        gone = prune_files(self.photos.media_dir / "minutes", older_than=cutoff)
        if gone:
            log.info("removed %d minutes PDF file(s) older than a day", gone)

    async def clean_export_files(self) -> int:
        """Export workbooks under media/exports older than ``[privacy] export_keep_days``: they hold pupil data
        and were sent already. The lease holder only, once a day."""
        if self.photos is None or not await self.hold_lease():
            return 0
        from storage.purge import remove_old_exports

        days = self.programme.privacy.export_keep_days
        older_than = self.clock.now() - timedelta(days=days)
        removed = await asyncio.to_thread(remove_old_exports, self.photos.media_dir, older_than=older_than)
        if removed:
            log.info("removed %d export file(s) older than %d day(s)", removed, days)
        return removed

    async def refresh_statistics(self) -> None:
        """The lease holder refreshes SQLite's planner statistics (storage.db.refresh_statistics)."""
        if not await self.hold_lease():
            return
        from storage.db import refresh_statistics

        await asyncio.to_thread(refresh_statistics, self.db)

    async def _cleanup_job(self) -> None:
        try:
            await self.refresh_statistics()
        except Exception:
            log.exception("statistics refresh failed")
        try:
            await self.clean_photo_files()
        except Exception:
            log.exception("photo clean-up failed")
        try:
            await self.clean_export_files()
        except Exception:
            log.exception("export clean-up failed")

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        r = self.programme.reminders
        tz = self.programme.tz
        sched = AsyncIOScheduler(timezone=tz)
        common = dict(max_instances=1, coalesce=True, misfire_grace_time=60)
        sched.add_job(
            self._job, IntervalTrigger(minutes=r.sweep_minutes, timezone=tz), args=[True], id="sweep", **common
        )
        sched.add_job(
            self._job,
            CronTrigger(hour=r.morning.hour, minute=r.morning.minute, timezone=tz),
            args=[True],
            id="morning",
            **common,
        )
        sched.add_job(
            self._job,
            IntervalTrigger(seconds=int(self.deliver_every.total_seconds()), timezone=tz),
            args=[False],
            id="deliver",
            **common,
        )
        sched.add_job(self._cleanup_job, CronTrigger(hour=3, minute=30, timezone=tz), id="daily-maintenance", **common)
        sched.start()
        self._scheduler = sched
        # The catch-up after downtime: right now, not one interval from now (and not through APScheduler,
        # which would call a start-up moment in the past a misfire).
        self.catch_up = asyncio.create_task(self._job(True), name="scheduler-catch-up")
        log.info(
            "scheduler started: sweep every %d min, morning %s, quiet %s-%s, holder %s",
            r.sweep_minutes,
            r.morning.strftime("%H:%M"),
            r.quiet_start.strftime("%H:%M"),
            r.quiet_end.strftime("%H:%M"),
            self.holder,
        )

    async def shutdown(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._closed = True
        self.deliverer.stop()  # messages not started stay pending; the one being sent is finished and recorded
        async with self._lock:
            await asyncio.to_thread(lease.release, self.db, holder=self.holder)

    @property
    def jobs(self) -> list:
        return self._scheduler.get_jobs() if self._scheduler else []


def build_scheduler(
    *,
    db: Engine,
    programme: Programme,
    clock: Clock,
    senders: dict[str, ChannelSender],
    mailer: Mailer | None,
    holder: str,
    photos=None,
    lease_ttl: timedelta = timedelta(minutes=2),
) -> SchedulerService:
    """What `fieldbot run` starts: ``await s.start()`` ... ``await s.shutdown()``."""
    return SchedulerService(
        db=db,
        programme=programme,
        clock=clock,
        senders=senders,
        mailer=mailer,
        holder=holder,
        photos=photos,
        lease_ttl=lease_ttl,
    )
