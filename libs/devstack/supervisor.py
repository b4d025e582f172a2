"""Running service processes: start with the right environment, wait for health, stop, kill, restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.devstack.catalogue import ServiceSpec
from libs.grpckit.channels import ClientTls, dial


class ServiceFailed(RuntimeError):
    """A service process exited, or did not become SERVING in time; the message has its output's tail."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class ServiceProcess:
    def __init__(self, spec: ServiceSpec, port: int, env: dict[str, str], log_path: Path | None = None):
        self.spec = spec
        self.port = port
        self.env = {**os.environ, **env, spec.port_env: str(port), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._tail: deque[str] = deque(maxlen=40)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        # Otherwise health checks would reach whatever already listens there and call it ours.
        if port_in_use(self.port):
            raise ServiceFailed(
                f"port {self.port} for {self.spec.name} is already in use (another `podium up`?); "
                f"choose another with {self.spec.port_env}"
            )
        output = self.log_path.open("ab") if self.log_path else subprocess.PIPE
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.spec.module],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches the supervisor only
            )
        finally:
            if output is not subprocess.PIPE:
                output.close()  # the child holds its own copy
        if output is subprocess.PIPE:
            asyncio.get_running_loop().run_in_executor(None, self._drain_output, self.process)

    def _drain_output(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            self._tail.append(line.decode(errors="replace").rstrip())

    def output_tail(self, lines: int = 40) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(list(self._tail)[-lines:])

    async def health(self) -> str:
        """SERVING, NOT_SERVING, or DOWN when nothing answers. Over TLS when the service's
        environment configures it, as the service's own peers would call it."""
        async with dial(self.address, ClientTls.from_env(self.env)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=self.spec.health_name), timeout=1
                )
            except grpc.aio.AioRpcError:
                return "DOWN"
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def wait_serving(self, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                if not self.running:
                    raise ServiceFailed(
                        f"{self.spec.name} exited with code {self.process and self.process.returncode}:\n"
                        f"{self.output_tail()}"
                    )
                if await self.health() == "SERVING":
                    return
                await asyncio.sleep(0.1)

    async def start(self, timeout: float = 60.0) -> None:
        self.launch()
        try:
            await self.wait_serving(timeout)
        except TimeoutError as e:
            self.kill()
            raise ServiceFailed(
                f"{self.spec.name} did not become SERVING in {timeout}s:\n{self.output_tail()}"
            ) from e

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as a crash would."""
        if self.running:
            self.process.kill()
            self.process.wait()

    async def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not drained within `grace` seconds."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, grace)
        except subprocess.TimeoutExpired:
            self.kill()

    async def restart(self, timeout: float = 60.0) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        await self.start(timeout)
