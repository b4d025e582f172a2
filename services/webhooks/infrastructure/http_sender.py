"""Sending one delivery attempt over HTTP with aiohttp's client.

A 2xx answer is a delivery; anything else (another status, a redirect, which
is never followed, a timeout, a refused connection or TLS failure) is a failed
attempt, with the status (or 0) and a short reason. Unless the deployment
allows private addresses, a host is resolved here and connected to only at a
public address (`public_address`): a name that resolves to 10.0.0.5, or an
address literal that is not public, fails the attempt.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.webhooks.domain.delivery_request import DeliveryRequest
from services.webhooks.domain.registration import local_host, public_address

ERROR_TEXT = 200  # characters of a failing answer's body kept as its reason


@dataclass(frozen=True)
class SendResult:
    status: int  # 0: no HTTP answer
    error: str  # empty when delivered

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class PublicOnlyResolver(AbstractResolver):
    """Resolves as the system does, keeping only public addresses (none: the host is refused)."""

    def __init__(self) -> None:
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        public = [r for r in found if public_address(r["host"])]
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self.inner.close()


class HttpSender:
    def __init__(self, *, timeout_seconds: float, max_connections: int, allow_private: bool):
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_connections = max_connections
        self.allow_private = allow_private
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            resolver=None if self.allow_private else PublicOnlyResolver(),
            ttl_dns_cache=60,
        )
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, trust_env=False)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, request: DeliveryRequest) -> SendResult:
        assert self.session is not None, "start() first"
        if not self.allow_private and local_host(urlsplit(request.url).hostname or ""):
            return SendResult(0, "refused: the URL's host is not a public address")
        try:
            async with self.session.post(
                request.url, data=request.body, headers=request.headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return SendResult(response.status, "")
                text = (await response.content.read(ERROR_TEXT)).decode(errors="replace")
                return SendResult(response.status, f"HTTP {response.status}: {text}".strip().rstrip(":"))
        except TimeoutError:
            return SendResult(0, f"no answer within {self.timeout.total:g} s")
        except Exception as e:  # a refused connection, TLS, a URL aiohttp rejects: a failed attempt
            return SendResult(0, f"{type(e).__name__}: {e}"[:ERROR_TEXT])
