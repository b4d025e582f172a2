"""The webhooks service under test, and a real HTTP receiver."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from podium.webhooks.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from tests.integration.clients import ServiceClient

# Retries in tenths of a second, so an outage and a dead letter take a moment, not hours.
FAST_RETRIES = {
    "PODIUM_WEBHOOKS_RETRY_BASE_SECONDS": "0.05",
    "PODIUM_WEBHOOKS_RETRY_MAX_DELAY_SECONDS": "0.2",
    "PODIUM_WEBHOOKS_MAX_ATTEMPTS": "4",
    "PODIUM_WEBHOOKS_POLL_SECONDS": "0.1",
}


class WebhookClient(ServiceClient):
    stub_class = webhook_service_pb2_grpc.WebhookServiceStub
    messages = webhook_service_pb2


@pytest.fixture(scope="session")
async def webhooks(service_factory, room, moderation):
    return await service_factory("webhooks", env=FAST_RETRIES)


@dataclass
class Arrival:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Endpoint:
    """One receiving URL: refuses (500) its first `refuse_first` requests, or all while `down`."""

    refuse_first: int = 0
    down: bool = False
    arrivals: list[Arrival] = field(default_factory=list)

    def answer(self) -> int:
        refused = self.down or len(self.arrivals) < self.refuse_first
        return 500 if refused else 204

    @property
    def accepted(self) -> list[Arrival]:
        return [a for a in self.arrivals if a.status < 300]


class Receiver:
    """A real aiohttp server on a loopback port, with an endpoint per path."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    def endpoint(self, name: str, **kw) -> tuple[str, Endpoint]:
        self.endpoints[name] = Endpoint(**kw)
        return f"{self.base}/{name}", self.endpoints[name]

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = self.endpoints[request.match_info["name"]]
        body = await request.read()
        status = endpoint.answer()
        endpoint.arrivals.append(Arrival(dict(request.headers), body, status, time.time()))
        return web.Response(status=status, text="refused for the test" if status >= 300 else "")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receiver():
    running = Receiver()
    await running.start()
    yield running
    await running.stop()
