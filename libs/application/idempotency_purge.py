"""Deletes stored responses older than the retention, every `interval` seconds.

Every replica of a service runs it: each batch is one DELETE that skips rows
another replica's purge holds, so replicas share the work and never wait on
each other. Batches are bounded, so a large backlog (after a long outage, or
the first run after an upgrade) is deleted in short transactions. Lookups
already ignore expired records, so how late the purge runs changes only the
table's size, never an answer.
"""

from __future__ import annotations

import logging

from libs.application.periodic import PeriodicSweep
from libs.eventstore.store import EventStore
from libs.telemetry.metrics import IDEMPOTENCY_PURGED

log = logging.getLogger(__name__)


class IdempotencyPurge(PeriodicSweep):
    name = "idempotency-purge"

    def __init__(self, store: EventStore, interval_seconds: float, batch_size: int = 1000):
        super().__init__(interval_seconds)
        self.store = store
        self.batch_size = batch_size

    async def sweep(self) -> int:
        """Purges until no expired record is left; returns how many went."""
        total = 0
        while True:
            purged = await self.store.purge_expired_responses(self.batch_size)
            IDEMPOTENCY_PURGED.labels(self.store.schema).inc(purged)
            total += purged
            if purged < self.batch_size:
                break
        if total:
            log.info("purged %d stored responses older than %s", total, self.store.idempotency_retention)
        return total
