"""A gRPC server with standard health and reflection, and a graceful drain.

Health has an overall entry ("") and one per service; all say NOT_SERVING
until the service calls `serving()`, which it does once its projections have
caught up with the log. On SIGTERM or SIGINT health flips to NOT_SERVING, new
calls are refused and running calls get `shutdown_grace_seconds` to finish.

With a certificate and key in the settings the server serves TLS only, and
requires client certificates when a client CA is set (`libs.grpckit.tls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from libs.config.settings import PodiumSettings
from libs.events.log_loss import LogLoss, Loss
from libs.grpckit.handlers import end_streams
from libs.grpckit.tls import server_credentials

log = logging.getLogger(__name__)


def server_options(settings: PodiumSettings) -> list[tuple[str, int]]:
    """Channel arguments of every Podium gRPC server.

    `grpc.max_connection_age_ms` makes a client's long-lived HTTP/2 connection move on: after
    the age the server sends GOAWAY, and the client's next calls open a connection the load
    balancer places anew (a Service's kube-proxy balances connections, not calls), so replicas
    added by a scale-out get their share. Calls under way finish on the old connection, for
    `grpc_max_connection_age_grace_seconds` or, by default, as long as they run.
    """
    size = settings.grpc_max_message_bytes
    options = [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.so_reuseport", 0),
    ]
    if settings.grpc_max_connection_age_seconds > 0:
        options.append(("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_seconds * 1000)))
        if settings.grpc_max_connection_age_grace_seconds >= 0:
            grace = int(settings.grpc_max_connection_age_grace_seconds * 1000)
            options.append(("grpc.max_connection_age_grace_ms", grace))
    return options


class GrpcHost:
    def __init__(self, settings: PodiumSettings, service_names: Iterable[str]):
        self.settings = settings
        self.service_names = tuple(service_names)
        self.server = grpc.aio.server(options=server_options(settings))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0
        self._stopping = asyncio.Event()
        self._log_loss: LogLoss | None = None
        self._health_changes: set[asyncio.Future] = set()

    def follow(self, log_loss: LogLoss) -> None:
        """Health follows `log_loss`: NOT_SERVING from the first lost log on, whatever the service
        says after (docs/operations.md, "Lost log")."""
        self._log_loss = log_loss
        log_loss.on_loss(self._on_lost_log)

    def _on_lost_log(self, loss: Loss) -> None:
        self._health_changes.add(
            asyncio.ensure_future(self.not_serving(f"lost log: {loss.topic}: {loss.reason}"))
        )

    async def start(self, address: str) -> int:
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        credentials = server_credentials(self.settings)  # before binding: a bad file stops the start
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        if not self.port:
            raise OSError(f"could not bind {address}")
        await self.server.start()
        transport = "plaintext" if credentials is None else "TLS"
        if credentials is not None and self.settings.grpc_tls_client_ca_file:
            transport = "mTLS (client certificates required)"
        log.info("gRPC listening on %s (port %d, %s)", address, self.port, transport)
        return self.port

    async def serving(self) -> None:
        if self._log_loss is not None and self._log_loss.lost:
            return  # stays NOT_SERVING: the operator's recovery restarts the service
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("health: SERVING")

    async def not_serving(self, why: str) -> None:
        """Health NOT_SERVING while the server keeps answering (a lost log, say): readiness takes the
        replica out of its Service, and an operator sees why in the log."""
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        log.error("health: NOT_SERVING: %s", why)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received", sig.name)
        self._stopping.set()

    async def wait_for_stop_signal(self) -> None:
        await self._stopping.wait()

    async def unless_stopped(self, starting: Awaitable[None]) -> bool:
        """Runs `starting` (a service's start-up: waiting for its topics, catching up) unless a stop
        signal comes first, which cancels it. True when it finished, False when stopped. A service
        that waits for its topics can so wait for ever and still stop at once when told."""
        start = asyncio.ensure_future(starting)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if start.done():
            start.result()  # its failure is the service's
            return True
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await start
        log.info("stopped while starting")
        return False

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Streams ended with UNAVAILABLE, health NOT_SERVING, new calls refused, in-flight unary
        calls given `shutdown_grace_seconds` to finish."""
        began = time.monotonic()
        ended = end_streams()
        log.info(
            "stopping: %d waiting streams ended with UNAVAILABLE (any others end after their current send);"
            " draining unary calls",
            ended,
        )
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace_seconds)
        log.info("gRPC server stopped after %.2f s", time.monotonic() - began)
