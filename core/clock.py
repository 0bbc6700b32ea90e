"""The one place that reads the wall clock.

Everything that needs "now" takes a ``Clock``; tests pass a ``FixedClock`` and move it by hand, so no test
sleeps and no rule depends on when the suite happens to run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

UTC = UTC
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def to_local(at: datetime, tz: ZoneInfo = LOCAL_TZ) -> datetime:
    return at.astimezone(tz)


def local_today(clock: Clock, tz: ZoneInfo = LOCAL_TZ) -> date:
    return clock.now().astimezone(tz).date()


def local_midnight_utc(day: date, tz: ZoneInfo = LOCAL_TZ) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz``."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def end_of_local_day_utc(day: date, tz: ZoneInfo = LOCAL_TZ) -> datetime:
    """The UTC instant at which ``day`` ends in ``tz`` (the next local midnight)."""
    return local_midnight_utc(day + timedelta(days=1), tz)


def fmt_date(day: date | None) -> str:
    """dd/mm/yyyy; "—" for a date that is not there (a birth date removed by the retention purge)."""
    return day.strftime("%d/%m/%Y") if day is not None else "—"


def fmt_local(at: datetime, tz: ZoneInfo = LOCAL_TZ) -> str:
    return at.astimezone(tz).strftime("%H:%M %d/%m/%Y")
