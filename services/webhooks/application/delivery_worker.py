"""The delivery worker: sends due deliveries, in order per webhook and Space, and records what
each attempt gave.

    loop: record what ended runs gave (which frees their queues' next heads)
          -> candidates -> runs (the ordering rule) -> hold -> one task per run:
              POST each delivery in turn; the first failure ends the run
              (retried after its backoff, or dead-lettered) and lets go of the rest

Every replica runs one; holds in PostgreSQL keep two from sending the same
run. It wakes when the delivery-queue view commits new deliveries (NOTIFY),
when one of its runs ends, when a retry puts deliveries back, and otherwise
every `poll_seconds` (for backoffs coming due). A hold lasts a few attempts'
worth (a run that would outlast it stops and lets the rest go); a worker that
dies mid-run leaves its run to be sent again once the hold expires, so a
receiver may get an event twice: it deduplicates by the event id
(`Idempotency-Key`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from libs.telemetry.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_EVENT_TO_POST
from services.webhooks.domain.delivery_request import delivery_request
from services.webhooks.domain.ordering import Candidate, runs
from services.webhooks.domain.retry import RetryPolicy, next_attempt
from services.webhooks.infrastructure.deliveries import (
    DEAD,
    DELIVERED,
    PENDING,
    Attempted,
    Deliveries,
    QueuedDelivery,
)
from services.webhooks.infrastructure.http_sender import HttpSender

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.005


class DeliveryWorker:
    name = "webhook-delivery-worker"

    def __init__(
        self,
        database_url: str,
        deliveries: Deliveries,
        sender: HttpSender,
        policy: RetryPolicy,
        *,
        max_concurrent: int,
        max_run: int,
        poll_seconds: float,
        request_timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
    ):
        self.database_url = database_url
        self.deliveries = deliveries
        self.sender = sender
        self.policy = policy
        self.max_concurrent = max_concurrent
        self.max_run = max_run
        self.poll_seconds = poll_seconds
        self.request_timeout = request_timeout
        self.clock = clock
        self.jitter = jitter
        self._wake = asyncio.Event()
        self._runs: set[asyncio.Task] = set()
        self._attempted: list[Attempted] = []  # outcomes the next round records, in one statement
        self._released: list[int] = []
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        await self.sender.start()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stops taking runs; the runs under way are cancelled and record what they had done."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for run in list(self._runs):
            run.cancel()
        if self._runs:
            await asyncio.wait(self._runs, timeout=self.request_timeout + 5)
        try:
            await self._record()
        except Exception:
            log.exception("could not record the last webhook attempts; they are sent again later")
        await self._unlisten()
        await self.sender.stop()

    def wake(self, *_args) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self._listen()
                self._wake.clear()  # before looking: a wake while it looks is not lost
                await self._record()
                if not await self._take():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                        # Runs end and views commit in bursts: one round a moment later records
                        # and takes for all of them, instead of a round trip each.
                        await asyncio.sleep(GATHER_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery worker failed; going on in %.0f s", self.poll_seconds)
                await self._unlisten()
                await asyncio.sleep(self.poll_seconds)

    async def _listen(self) -> None:
        if self._listener is None or self._listener.is_closed():
            self._listener = await asyncpg.connect(self.database_url)
            await self._listener.add_listener(self.deliveries.channel, self.wake)

    async def _unlisten(self) -> None:
        if self._listener is not None:
            conn, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _take(self) -> bool:
        """Takes what runs it has room for; True when it took all it had room for (look again now)."""
        room = self.max_concurrent - len(self._runs)
        if room <= 0:
            return False
        queued = await self.deliveries.candidates(room, self.max_run)
        if not queued:
            return False
        by_id = {q.delivery_id: q for q in queued}
        planned = runs(
            [Candidate(q.delivery_id, q.webhook_id, q.space_id, q.due, q.held) for q in queued], self.max_run
        )
        if not planned:
            return False
        held = await self.deliveries.hold([i for run in planned for i in run], self.hold_seconds)
        stray: list[int] = []
        for run in planned:
            taken = _leading(run, held)
            stray += [i for i in run[len(taken) :] if i in held]
            if taken:
                task = asyncio.create_task(self._send_run([by_id[i] for i in taken]))
                self._runs.add(task)
                task.add_done_callback(self._run_ended)
        if stray:  # held behind a delivery another worker took first: not ours to send
            self._released += stray
            self._wake.set()
        return len(planned) >= room

    async def _record(self) -> None:
        """Records the outcomes of the runs that ended, which frees their queues' next heads."""
        attempted, released = self._attempted, self._released
        if not attempted and not released:
            return
        self._attempted, self._released = [], []
        try:
            await self.deliveries.record(attempted, released)
        except BaseException:
            self._attempted[:0], self._released[:0] = attempted, released  # the next round tries again
            raise

    def _run_ended(self, task: asyncio.Task) -> None:
        self._runs.discard(task)
        self._wake.set()

    @property
    def hold_seconds(self) -> float:
        """How long a run is held: a few attempts' worth, so a dead worker's run is sent again
        soon. A run ends early rather than attempt a delivery its hold might not outlast."""
        return max(30.0, 3 * (self.request_timeout + 5))

    async def _send_run(self, run: list[QueuedDelivery]) -> None:
        attempted: list[Attempted] = []
        last_start = time.monotonic() + self.hold_seconds - (self.request_timeout + 5)
        try:
            for delivery in run:
                if time.monotonic() > last_start:
                    break  # the rest go back, untried, to be taken again with a fresh hold
                outcome = await self._attempt(delivery)
                attempted.append(outcome)
                if outcome.state != DELIVERED:
                    break
        finally:
            done = {a.delivery_id for a in attempted}
            self._attempted += attempted
            self._released += [d.delivery_id for d in run if d.delivery_id not in done]

    async def _attempt(self, delivery: QueuedDelivery) -> Attempted:
        attempt = delivery.attempts + 1
        request = delivery_request(
            url=delivery.url,
            secret=delivery.secret,
            webhook_id=delivery.webhook_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            attempt=attempt,
            body=delivery.body,
            timestamp=int(time.time()),
        )
        if attempt == 1:
            WEBHOOK_EVENT_TO_POST.observe((self.clock() - delivery.occurred_at).total_seconds())
        result = await self.sender.send(request)
        now = self.clock()
        if result.delivered:
            WEBHOOK_ATTEMPTS.labels("delivered").inc()
            return Attempted(delivery.delivery_id, DELIVERED, now, result.status, "")
        retry_at = next_attempt(attempt, self.policy, now, self.jitter())
        if retry_at is None:
            WEBHOOK_ATTEMPTS.labels("dead_lettered").inc()
            log.warning(
                "webhook %s: delivery %d (%s) dead-lettered after %d attempts: %s",
                delivery.webhook_id, delivery.delivery_id, delivery.event_type, attempt, result.error,
            )  # fmt: skip
            return Attempted(delivery.delivery_id, DEAD, now, result.status, result.error)
        WEBHOOK_ATTEMPTS.labels("failed").inc()
        return Attempted(delivery.delivery_id, PENDING, now, result.status, result.error, retry_at)


def _leading(run: list[int], held: set[int]) -> list[int]:
    """The part of `run` from its head that this worker holds: it sends nothing past a gap."""
    taken = []
    for delivery_id in run:
        if delivery_id not in held:
            break
        taken.append(delivery_id)
    return taken
