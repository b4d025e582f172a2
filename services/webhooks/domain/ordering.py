"""The ordering rule: per webhook and Space, a delivery is attempted only once every earlier
one is done.

A queue is one (webhook, Space) pair's pending deliveries in the order they
were enqueued. Its head may be attempted when it is due (its backoff is over)
and no worker holds it. Behind a head that is being attempted, later
deliveries of the same queue wait; so one worker takes a whole *run*: the head
and the deliveries right behind it that are due too, sent one after the other,
stopping at the first failure (the rest go back untried). A delivery that is
delivered or dead-lettered leaves the queue, and the next becomes its head.

    runs(candidates, max_run) -> [[delivery_id, ...], ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A pending delivery near the head of its queue, as a worker sees it now."""

    delivery_id: int
    webhook_id: str
    space_id: str
    due: bool  # its next attempt time has come
    held: bool  # another worker holds it (an unexpired lease)


def runs(candidates: Sequence[Candidate], max_run: int) -> list[list[int]]:
    """The runs to attempt now, one per queue at most, each in order.

    `candidates` are, for some queues, their first pending deliveries (each queue's head among
    them). A queue whose head is not due, or is held, gives nothing."""
    queues: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        queues.setdefault((c.webhook_id, c.space_id), []).append(c)
    found = []
    for queue in queues.values():
        queue.sort(key=lambda c: c.delivery_id)
        run = []
        for c in queue[:max_run]:
            if not c.due or c.held:
                break
            run.append(c.delivery_id)
        if run:
            found.append(run)
    return found
