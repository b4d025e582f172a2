"""Logs are JSON lines with the service, trace and Space, and never carry a secret or a token."""

from __future__ import annotations

import json

import grpc
import pytest

from libs.auth.tokens import mint_token
from tests.integration.clients import RoomClient

pytestmark = pytest.mark.integration

SECRET = "a-private-signing-key-that-must-never-be-logged"


async def test_debug_logs_hold_no_secret_and_no_token(service_factory, private_broker, private_database_url):
    room = await service_factory(
        "room",
        broker=private_broker,
        database=private_database_url,
        env={"PODIUM_JWT_SECRET": SECRET, "PODIUM_LOG_LEVEL": "DEBUG"},
    )
    good = mint_token(SECRET, "log-host")
    forged = mint_token("some-other-key-long-enough-for-hs256", "log-host")
    host = RoomClient(room.channel, "log-host", token=good)
    space_id = (await host.CreateSpace(title="logged")).space.space_id
    await host.StartSpace(space_id=space_id)
    with pytest.raises(grpc.aio.AioRpcError):
        await RoomClient(room.channel, "log-host", token=forged).GetSpace(space_id=space_id)
    with pytest.raises(grpc.aio.AioRpcError):
        await host.GetSpace(space_id="\x01bad")
    await room.stop()

    text = room.process.log_path.read_text(errors="replace")
    assert text.strip(), "the service wrote no log"
    for needle in (SECRET, good, forged, good.split(".")[2], forged.split(".")[2]):
        assert needle not in text
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, "no structured log lines"
    records = [json.loads(line) for line in lines]
    assert all(r["service"] == "room" and r["level"] and "message" in r for r in records)
