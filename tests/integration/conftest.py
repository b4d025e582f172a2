"""Service processes shared by the integration tests that do not kill them."""

from __future__ import annotations

import asyncio

import grpc
import pytest


@pytest.fixture(scope="session")
async def room(service_factory):
    return await service_factory("room")


@pytest.fixture(scope="session")
async def moderation(service_factory):
    return await service_factory("moderation")


async def eventually(
    call,
    *,
    timeout: float = 10.0,
    retry_on=(
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
):
    """Calls `call()` until it stops failing with one of `retry_on` (views catching up)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as e:
                if e.code() not in retry_on:
                    raise
            await asyncio.sleep(0.05)
