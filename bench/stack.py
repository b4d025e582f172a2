"""The real stack for a benchmark: a broker, a fresh database, and service processes.

    async with BenchStack() as stack:
        room = await stack.start("room")

The broker is embedded unless KAFKA_BOOTSTRAP_SERVERS is set; the database is a
fresh one on the server `resolve_database` finds. Everything is torn down at the end.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from libs.config.settings import PodiumSettings
from libs.devstack.broker import EmbeddedBroker, free_port
from libs.devstack.catalogue import service
from libs.devstack.database import create_database, drop_database, resolve_database
from libs.devstack.supervisor import ServiceProcess
from libs.events.topics import EVERY_TOPIC, create_topics
from libs.migrations.tool import upgrade_all_async

# Set by `python -m bench` to profile one service: {"service": name, "out": Path}; the
# first process of that service a BenchStack starts gets py-spy attached, and the
# Profiler is left here under "profiler" (stopped when its stack closes).
PROFILE: dict = {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_cpu_seconds(before, after) -> tuple[float, float, float]:
    """The whole machine's CPU-seconds between two `psutil.cpu_times()` readings: in all, busy (not
    idle nor waiting on I/O), and stolen by the host."""
    spent = {f: getattr(after, f) - getattr(before, f) for f in after._fields}
    total = sum(spent.values()) or 1.0
    busy = total - spent.get("idle", 0.0) - spent.get("iowait", 0.0)
    return total, busy, spent.get("steal", 0.0)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_header() -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "commit": commit,
    }


class BenchStack:
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="podium-bench-"))
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = ""
        self.database_url = ""
        self._server = None
        self._database = ""
        self.services: list[ServiceProcess] = []

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PODIUM_LOG_LEVEL": "WARNING",
            "PODIUM_METRICS_PORT": "0",
        }

    async def __aenter__(self) -> BenchStack:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        else:
            self.broker = EmbeddedBroker(log_path=self.work / "broker.log")
            await self.broker.start()
            self.bootstrap = self.broker.bootstrap
            EmbeddedBroker.client_defaults()  # ADR 0016
        # The bench stack owns its topics, as the test stack and `podium up` do: services never make them.
        await create_topics(self.bootstrap, EVERY_TOPIC, PodiumSettings().topic_partitions, 1)
        self._server = await resolve_database(self.work / "pgdata")
        self._database = f"podium_bench_{uuid.uuid4().hex[:8]}"
        self.database_url = await create_database(self._server.url, self._database)
        await upgrade_all_async(self.database_url)  # as the migration Job would: services run no DDL
        return self

    async def start(
        self, name: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> ServiceProcess:
        process = ServiceProcess(
            service(name), free_port(), {**self.env, **(env or {})}, log_path=self.work / f"{name}.log"
        )
        await process.start(timeout=timeout)
        self.services.append(process)
        if PROFILE.get("service") == name and "profiler" not in PROFILE:
            from bench.profiling import Profiler

            profiler = Profiler(process.process.pid, PROFILE["out"], label=f"service {name}")
            profiler.start()
            PROFILE["profiler"] = profiler
        return process

    async def __aexit__(self, *exc) -> None:
        if (profiler := PROFILE.get("profiler")) is not None:
            profiler.stop()
        for process in reversed(self.services):
            await process.stop()
        if self._server is not None:
            await drop_database(self._server.url, self._database)
            self._server.stop()
        if self.broker:
            self.broker.stop()
