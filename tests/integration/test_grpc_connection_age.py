"""A client's connection to a Podium server is asked to go away after the configured age, and the
client's next calls open a new one (which a Service would place anew); a call under way finishes."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from libs.config.settings import PodiumSettings
from libs.grpckit.server import server_options

pytestmark = pytest.mark.integration


async def _peer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"slow":
        await asyncio.sleep(1.0)  # runs across the connection's GOAWAY
    return context.peer().encode()


async def test_calls_move_to_a_new_connection_after_the_age_and_a_call_under_way_finishes():
    settings = PodiumSettings(grpc_max_connection_age_seconds=0.3)
    server = grpc.aio.server(options=server_options(settings))
    handler = grpc.unary_unary_rpc_method_handler(_peer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Peer", {"Get": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            get = channel.unary_unary("/test.Peer/Get")
            slow = asyncio.ensure_future(get(b"slow", timeout=5))
            first = (await get(b"", timeout=5)).decode()
            peers = {first}
            deadline = time.monotonic() + 5
            while len(peers) < 2 and time.monotonic() < deadline:
                peers.add((await get(b"", timeout=5)).decode())
                await asyncio.sleep(0.05)
            assert len(peers) >= 2, f"every call stayed on {first}"
            assert (await slow).decode() == first  # finished on the connection that was aged out
    finally:
        await server.stop(0)
