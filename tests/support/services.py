"""Service processes under test: real `python -m services.<name>` processes on free ports."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc

from libs.devstack.broker import free_port
from libs.devstack.catalogue import service
from libs.devstack.supervisor import ServiceProcess
from libs.events.topics import ANALYTICS_TABLES, changelogs
from tests.support.channels import keep_grpc_aio_engine_alive
from tests.support.infrastructure import ensure_migrated, make_topics


class RunningService:
    """One service process that is SERVING, with a channel to it that survives restarts."""

    def __init__(self, process: ServiceProcess):
        keep_grpc_aio_engine_alive()
        self.process = process
        self.channel = grpc.aio.insecure_channel(process.address)

    @property
    def address(self) -> str:
        return self.process.address

    @property
    def running(self) -> bool:
        return self.process.running

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, no cleanup."""
        self.process.kill()

    async def terminate(self, grace: float = 15.0) -> None:
        """SIGTERM and wait for a graceful exit (SIGKILL after `grace` seconds); the channel stays open."""
        await self.process.stop(grace)

    async def restart(self, timeout: float = 60.0) -> None:
        """Kills the process if it still runs, starts a new one on the same port, waits for SERVING."""
        self.process.kill()
        await self.process.start(timeout)

    async def stop(self) -> None:
        """Terminates the process and closes the channel."""
        await self.terminate()
        await self.channel.close()


def service_environment(name: str, bootstrap: str, database_url: str, extra: dict[str, str] | None = None):
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PODIUM_LOG_LEVEL": "INFO",
        "PODIUM_METRICS_PORT": "0",
        # A test run keeps twenty-odd service processes alive at once (the session's, a package's
        # shared stack, a test's own) against one PostgreSQL whose default max_connections is 100;
        # each pool keeps what it opened for minutes. Five is plenty for a test's traffic.
        "PODIUM_DATABASE_POOL_SIZE": "5",
        f"PODIUM_{name.upper().replace('-', '_')}_BIND_HOST": "127.0.0.1",
        **(extra or {}),
    }


async def start_service(
    name: str,
    *,
    bootstrap: str,
    database_url: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    migrate: bool = True,
) -> RunningService:
    """Starts service `name` from the catalogue on a free port and waits until it is SERVING.

    On failure the error carries the tail of the process's output (its log is in `log_dir`).
    Analytics with an app id of its own (PODIUM_ANALYTICS_APP_ID) gets that app's changelogs made
    first: the test stack makes the topics, never a service. The database is migrated first (once
    per database), as the migration Job does before a rollout: services run no DDL.
    """
    if migrate:
        await ensure_migrated(database_url)
    if name == "analytics" and (app_id := (env or {}).get("PODIUM_ANALYTICS_APP_ID")):
        await make_topics(bootstrap, changelogs(app_id, ANALYTICS_TABLES))
    process = ServiceProcess(
        service(name),
        free_port(),
        service_environment(name, bootstrap, database_url, env),
        log_path=log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log",
    )
    await process.start(timeout)
    return RunningService(process)


class ServiceFactory:
    """Starts services for tests and remembers which to kill when: at the end of the session, or
    at the end of the test, for those on a broker or database that is not the session's."""

    def __init__(self, broker, database_url: str, log_dir: Path):
        self.broker = broker
        self.database_url = database_url
        self.log_dir = log_dir
        self.session_scoped: list[RunningService] = []
        self.test_scoped: list[RunningService] = []

    async def __call__(
        self, name: str, *, broker=None, database: str | None = None, env: dict[str, str] | None = None
    ) -> RunningService:
        broker = broker or self.broker
        database = database or self.database_url
        if broker is not self.broker and database == self.database_url:
            # Its durable views would resume from positions another broker's log reached.
            raise ValueError(f"{name} on a broker of the test's own needs a database of its own too")
        running = await start_service(
            name,
            bootstrap=broker.bootstrap,
            database_url=database,
            log_dir=self.log_dir,
            env={**broker.service_env, **(env or {})},
        )
        shared = broker is self.broker and database == self.database_url
        (self.session_scoped if shared else self.test_scoped).append(running)
        return running

    async def stop(self, services: list[RunningService]) -> None:
        """SIGKILLs them and closes their channels."""
        while services:
            running = services.pop()
            running.kill()
            # Closing the channel cancels any call still open on it. A call left open keeps grpc's
            # completion queue busy, and its shutdown (on garbage collection) then waits forever.
            await running.channel.close()
