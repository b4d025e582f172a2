"""Exactly once, in order, per stream: the rule every projection applies events by.

Events arrive at least once and, after a broker lost its log, possibly with
gaps that later fill. `StreamGate.offer` says what to do with each: apply it
(together with any held successors it releases), drop it as a duplicate, or
hold it until the versions before it arrive. A consumer whose applied
versions live elsewhere (a faust table) says where a stream stands with
`start_at`, and `release` gives up waiting for a gap that will not fill.
Pure, so it is tested by itself.
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

    def start_at(self, stream: Stream, version: int) -> None:
        """`stream` is applied up to `version` (as its consumer's own state records)."""
        self._applied[stream] = version

    def held_streams(self) -> list[Stream]:
        return list(self._held)

    def release(self, stream: Stream) -> list[T]:
        """Stops waiting for `stream`'s missing versions: its held items, in version order, to apply
        now despite the gap; later versions follow on from the last of them."""
        held = self._held.pop(stream, {})
        if held:
            self._applied[stream] = max(held)
        return [held[v] for v in sorted(held)]

    def forget(self, stream: Stream) -> None:
        """Drops what the gate knows of `stream` (its consumer keeps the applied version itself)."""
        self._applied.pop(stream, None)
        self._held.pop(stream, None)

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
