"""Flood control: one person sending more than N messages a minute is told once to slow down, and the extra
messages are dropped before they touch the database, so a stuck client or a script cannot starve anyone else.

In-process and per sender (channel + account): the engine runs in one process per deployment, and losing
the counters on a restart only forgives a burst.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from enum import Enum

WINDOW = timedelta(minutes=1)


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # first message over the limit: answer once with "slow down"
    DROP = "drop"  # further messages in the same burst: silence


class FloodGate:
    def __init__(self, *, limit_per_minute: int = 30, max_tracked: int = 50_000) -> None:
        if limit_per_minute < 1:
            raise ValueError("limit_per_minute must be at least 1")
        self.limit = limit_per_minute
        self.max_tracked = max_tracked
        self._seen: dict[tuple[str, str], deque[datetime]] = {}
        self._warned: dict[tuple[str, str], datetime] = {}

    def check(self, channel: str, user_id: str, now: datetime) -> Verdict:
        key = (channel, user_id)
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= self.max_tracked:
                self._forget_idle(now)
            times = self._seen[key] = deque()
        cutoff = now - WINDOW
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.limit:
            warned = self._warned.get(key)
            if warned is not None and warned > cutoff:
                return Verdict.DROP
            self._warned[key] = now
            return Verdict.WARN
        times.append(now)
        return Verdict.ALLOW

    def wait_seconds(self, channel: str, user_id: str, now: datetime) -> int:
        """How long until the oldest message in the window leaves it (for the "please wait" message)."""
        times = self._seen.get((channel, user_id))
        if not times:
            return 0
        return max(1, int((times[0] + WINDOW - now).total_seconds()) + 1)

    def _forget_idle(self, now: datetime) -> None:
        cutoff = now - WINDOW
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= cutoff]:
            self._seen.pop(key, None)
            self._warned.pop(key, None)
