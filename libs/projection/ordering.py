"""Exactly once, in order, per stream: the rule every projection applies events by.

Events arrive at least once and, after a broker lost its log, possibly with
gaps that later fill. `StreamGate.offer` says what to do with each: apply it
(together with any held successors it releases), drop it as a duplicate, or
hold it until the versions before it arrive. Pure, so it is tested by itself.
"""

from __future__ import annotations

from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")
Stream = tuple[str, str]  # (producer, stream id)


class Verdict(Enum):
    APPLY = "apply"
    DUPLICATE = "duplicate"
    HELD = "held"


class StreamGate(Generic[T]):
    def __init__(self) -> None:
        self._applied: dict[Stream, int] = {}
        self._held: dict[Stream, dict[int, T]] = {}

    def applied_version(self, stream: Stream) -> int:
        return self._applied.get(stream, 0)

    @property
    def held_count(self) -> int:
        return sum(len(h) for h in self._held.values())

    def offer(self, stream: Stream, version: int, item: T) -> tuple[Verdict, list[T]]:
        """The verdict on `item`, and the items to apply now, in version order."""
        last = self._applied.get(stream, 0)
        if version <= last:
            return Verdict.DUPLICATE, []
        if version > last + 1:
            self._held.setdefault(stream, {}).setdefault(version, item)
            return Verdict.HELD, []
        ready = [item]
        held = self._held.get(stream)
        while held and (version + 1) in held:
            version += 1
            ready.append(held.pop(version))
        if held is not None:
            for stale in [v for v in held if v <= version]:
                del held[stale]
            if not held:
                del self._held[stream]
        self._applied[stream] = version
        return Verdict.APPLY, ready
