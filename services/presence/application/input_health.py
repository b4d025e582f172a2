"""Whether presence is degraded: behind its input, or its input silent, on any partition it reads.

Degraded, presence times nobody out (the stream's check, `domain/evidence.py`'s
`lagging`, is what holds them); this module only says so: the gauge
`podium_presence_degraded` and one log line when presence enters or leaves the
state. The stream reports each partition's verdict as it reads a tick; the timer
reviews the partitions assigned to this replica, so a partition whose ticks are
not read at all (the broker or presence stopped) counts as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from libs.telemetry.metrics import PRESENCE_DEGRADED

log = logging.getLogger(__name__)


class InputHealth:
    def __init__(self, stalled_after: float, clock: Callable[[], float] = time.time):
        self.stalled_after = stalled_after
        self.clock = clock
        self.reasons: dict[int, str] = {}  # partition -> why no time-outs there now
        self.read_at: dict[int, float] = {}  # partition -> when its last tick was read (or assigned)
        self.degraded = False
        PRESENCE_DEGRADED.set(0)

    def checked(self, partition: int, reason: str | None) -> None:
        """The stream read a tick of `partition`: `reason` is why it may not time anyone out, or None."""
        self.read_at[partition] = self.clock()
        if reason is None:
            self.reasons.pop(partition, None)
        else:
            self.reasons[partition] = reason
        self._report()

    def review(self, assigned: set[int] | None) -> None:
        """From the timer: partitions assigned here whose ticks are not being read are degraded too;
        partitions no longer assigned here are not this replica's concern."""
        now = self.clock()
        if assigned is not None:
            for partition in [p for p in self.read_at if p not in assigned]:
                del self.read_at[partition]
                self.reasons.pop(partition, None)
            for partition in assigned:
                since = self.read_at.setdefault(partition, now)
                if now - since > self.stalled_after:
                    self.reasons[partition] = f"no tick read for {now - since:.1f} s"
        self._report()

    def _report(self) -> None:
        degraded = bool(self.reasons)
        if degraded == self.degraded:
            return
        self.degraded = degraded
        PRESENCE_DEGRADED.set(int(degraded))
        if degraded:
            log.warning(
                "presence degraded: no time-outs until its input is current again (%s)", self.summary()
            )
        else:
            log.warning("presence no longer degraded: time-outs on evidence resume")

    def summary(self) -> str:
        return "; ".join(f"partition {p}: {reason}" for p, reason in sorted(self.reasons.items()))
