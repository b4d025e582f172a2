"""Spaces on their way out of an in-memory view cache: memory follows live Spaces, not history.

    leaving = LeavingSpaces(after=60, keep=10_000, clock=time.time, still_open=..., forget=...)
    leaving.schedule(space_id)     # it ended (or was never seen created)
    leaving.sweep()                # on every event: forgets the Spaces whose time is up

A cache (the media relay's admission view, presence's board) keeps an ended Space for `after`
seconds, so what races its end (a frame, a heartbeat, a watcher) is told "ended" from memory;
then `forget(space_id)` takes it out, and the view's rows in PostgreSQL answer for it. At most
`keep` Spaces wait at once (a catch-up through many ended Spaces): beyond that the oldest go
early. A Space that turned out open after all (an entry made before its Space's first event was
read) is not forgotten: `still_open(space_id)` says so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class LeavingSpaces:
    def __init__(
        self,
        *,
        after: float,
        keep: int,
        clock: Callable[[], float],
        still_open: Callable[[str], bool],
        forget: Callable[[str], None],
    ) -> None:
        self.after, self.keep, self.clock = after, keep, clock
        self.still_open, self.forget = still_open, forget
        self._queue: deque[tuple[float, str]] = deque()  # (when, space id), oldest first
        self._at: dict[str, float] = {}

    def schedule(self, space_id: str) -> None:
        """The Space leaves memory `after` seconds from now (again, if it was scheduled before)."""
        at = self.clock() + self.after
        self._at[space_id] = at
        self._queue.append((at, space_id))
        if len(self._queue) > self.keep:
            self._forget_due(early=len(self._queue) - self.keep)

    def scheduled(self, space_id: str) -> bool:
        return space_id in self._at

    def sweep(self) -> None:
        """Forgets the Spaces whose time is up; O(1) when none is."""
        if self._queue and self._queue[0][0] <= self.clock():
            self._forget_due()

    def __len__(self) -> int:
        return len(self._at)

    def _forget_due(self, early: int = 0) -> None:
        now, queue = self.clock(), self._queue
        while queue and (early > 0 or queue[0][0] <= now):
            early -= 1
            at, space_id = queue.popleft()
            if self._at.get(space_id) != at:
                continue  # it was scheduled again since
            del self._at[space_id]
            if not self.still_open(space_id):
                self.forget(space_id)
