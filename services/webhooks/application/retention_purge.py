"""Deletes deliveries delivered or dead-lettered longer ago than the retention, and webhooks
deleted that long ago, every `interval` seconds (on every replica: batches skip rows another
replica's purge holds)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from libs.application.periodic import PeriodicSweep
from services.webhooks.infrastructure.deliveries import Deliveries
from services.webhooks.infrastructure.endpoints import Endpoints

log = logging.getLogger(__name__)


class RetentionPurge(PeriodicSweep):
    name = "webhooks-retention-purge"

    def __init__(
        self,
        deliveries: Deliveries,
        endpoints: Endpoints,
        retention: timedelta,
        interval_seconds: float,
        *,
        batch_size: int = 5000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        super().__init__(interval_seconds)
        self.deliveries = deliveries
        self.endpoints = endpoints
        self.retention = retention
        self.batch_size = batch_size
        self.clock = clock

    async def sweep(self) -> int:
        before = self.clock() - self.retention
        total = 0
        while (purged := await self.deliveries.purge(before, self.batch_size)) > 0:
            total += purged
            if purged < self.batch_size:
                break
        webhooks = await self.endpoints.purge_deleted(before)
        if total or webhooks:
            log.info(
                "purged %d deliveries and %d deleted webhooks older than %s", total, webhooks, self.retention
            )
        return total
