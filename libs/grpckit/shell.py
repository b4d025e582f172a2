"""The shell every service's composition root wires its parts into.

    shell = ServiceShell(settings, schema="room", producer="room", publishes=(ROOM_EVENTS,), ...)
    async with shell:                       # pool, schema at its head?, event store, idempotency purge
        shell.add_durable_view(SpaceDirectory(shell.pool, shell.store))
        add_RoomServiceServicer_to_server(api, shell.host.server)
        await shell.serve(port)             # until SIGTERM/SIGINT

`serve` starts the gRPC server (health NOT_SERVING), the outbox relay and the
projection runners, waits until every projection has caught up, starts the
background tasks, flips health to SERVING, and on a stop signal drains in the
reverse order. A lost log reported by any of its consumers (`shell.log_loss`)
turns health NOT_SERVING for good: the service waits for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from libs.application.idempotency_purge import IdempotencyPurge
from libs.auth.keys import KeySet
from libs.auth.tokens import TokenVerifier
from libs.config.settings import PodiumSettings
from libs.events.log_loss import LogLoss
from libs.events.topics import DEAD_LETTER, TopicSpec
from libs.eventstore.pool import create_pool
from libs.eventstore.relay import OutboxRelay
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Authenticator
from libs.grpckit.server import GrpcHost
from libs.migrations.check import require_at_head
from libs.projection.durable import CacheRunner, DurableProjectionRunner, DurableView, ViewCache
from libs.projection.runner import Projection, ProjectionRunner

log = logging.getLogger(__name__)


def authenticator_for(settings: PodiumSettings) -> Authenticator:
    """The bearer-token check of a service: its configured key set, audience and leeway."""
    keys = KeySet.load(
        settings.jwt_secret.get_secret_value(),
        current_kid=settings.jwt_key_id,
        previous=settings.jwt_previous_secrets.get_secret_value(),
        jwks_file=settings.jwt_jwks_file,
    )
    return Authenticator(TokenVerifier(keys, settings.jwt_audience, settings.jwt_leeway_seconds))


class Background(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class ServiceShell:
    def __init__(
        self,
        settings: PodiumSettings,
        *,
        schema: str,
        producer: str,
        publishes: tuple[TopicSpec, ...],
        service_names: Iterable[str],
    ):
        self.settings = settings
        self.schema = schema
        self.producer = producer
        self.publishes = publishes
        self.host = GrpcHost(settings, service_names)
        self.authenticator = authenticator_for(settings)
        self.runners: list[ProjectionRunner] = []
        self.background: list[Background] = []
        self.pool = None
        self.store: EventStore | None = None
        self.log_loss = LogLoss()
        self.host.follow(self.log_loss)

    async def __aenter__(self) -> ServiceShell:
        self.pool = await create_pool(self.settings)
        try:
            await require_at_head(self.pool, self.schema)  # services run no DDL: `podium migrate` does
        except BaseException:
            await self.pool.close()
            raise
        self.store = EventStore(
            self.pool,
            self.schema,
            producer=self.producer,
            idempotency_retention=timedelta(seconds=self.settings.idempotency_retention_seconds),
        )
        self.add_background(IdempotencyPurge(self.store, self.settings.idempotency_purge_interval_seconds))
        return self

    async def __aexit__(self, *exc) -> None:
        if self.pool is not None:
            await self.pool.close()

    def add_projection(self, projection: Projection) -> ProjectionRunner:
        runner = ProjectionRunner(
            self.settings,
            projection,
            client_id=f"podium-{self.producer}-{projection.name}",
            log_loss=self.log_loss,
        )
        self.runners.append(runner)
        return runner

    def add_durable_view(self, view: DurableView) -> DurableProjectionRunner:
        """A view stored in this service's schema, resumed from its stored position (docs/architecture.md)."""
        assert self.pool is not None, "use `async with shell:` first"
        runner = DurableProjectionRunner(
            self.settings,
            self.pool,
            self.schema,
            view,
            client_id=f"podium-{self.producer}-{view.name}",
            log_loss=self.log_loss,
            # A view that acts on few of the events it reads may trade that much latency for
            # fewer transactions (the room's evictor reads every room event for one kind).
            live_batch_ms=getattr(view, "live_batch_ms", 0),
        )
        self.runners.append(runner)
        return runner

    def add_view_cache(self, view: DurableView, cache: ViewCache) -> CacheRunner:
        """An in-memory cache in front of durable `view`, kept current on every replica: loaded from
        the view's rows at start, then read on from the log (docs/architecture.md)."""
        assert self.pool is not None, "use `async with shell:` first"
        runner = CacheRunner(
            self.settings,
            self.pool,
            self.schema,
            view,
            cache,
            client_id=f"podium-{self.producer}-{cache.name}",
            log_loss=self.log_loss,
        )
        self.runners.append(runner)
        return runner

    def add_background(self, task: Background) -> None:
        self.background.append(task)

    async def _start(self) -> None:
        for runner in self.runners:
            await runner.start()
        for runner in self.runners:
            await runner.caught_up.wait()
        for task in self.background:
            await task.start()

    async def serve(self, bind_host: str, port: int) -> None:
        assert self.pool is not None, "use `async with shell:` first"
        relay = OutboxRelay(self.settings, self.pool, self.schema, (*self.publishes, DEAD_LETTER))
        self.host.install_signal_handlers()
        await self.host.start(f"{bind_host}:{port}")
        await relay.start()
        try:
            if await self.host.unless_stopped(self._start()):
                await self.host.serving()
                print(f"{self.producer} service ready on port {self.host.port}", flush=True)
                await self.host.wait_for_stop_signal()
            log.info("stopping")
            await self.host.stop()
        finally:
            for task in reversed(self.background):
                await task.stop()
            for runner in reversed(self.runners):
                await runner.stop()
            await relay.stop(drain_seconds=self.settings.shutdown_grace_seconds)
