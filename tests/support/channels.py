"""Async gRPC channels to services under test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

_engine_keepalive: grpc.aio.Channel | None = None


def keep_grpc_aio_engine_alive() -> None:
    """Holds one idle aio channel for the rest of the process.

    grpc's asyncio engine shuts down when its last channel or server is freed, and that shutdown
    joins its poller thread. When the freeing happens in a garbage collection outside the event
    loop (pytest collects between tests), the join has been seen to wait forever and hang the run.
    With this channel alive the engine is never shut down mid-run. Call it from inside the loop.
    """
    global _engine_keepalive
    if _engine_keepalive is None:
        _engine_keepalive = grpc.aio.insecure_channel("127.0.0.1:9")  # never used, never connected


@contextlib.asynccontextmanager
async def open_channel(address: str, *, ready_timeout: float = 10.0) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure channel to `address`, connected before it is handed out, closed afterwards."""
    keep_grpc_aio_engine_alive()
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), ready_timeout)
        yield channel
    finally:
        await channel.close()
