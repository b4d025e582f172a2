"""The services the web client needs, and the gateway in front of them, for the browser tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from libs.devstack.broker import free_port
from tests.integration.gateway.stun import start_stun_server

FAST_FINALIZE = {
    "PODIUM_REPLAY_FINALIZE_DELAY_SECONDS": "0.3",
    "PODIUM_REPLAY_FINALIZE_POLL_SECONDS": "0.2",
}
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web-client"


@pytest.fixture(scope="package")
async def web_stack(service_factory, moderation, tmp_path_factory):
    """Relay, a room that names it, presence, replay and the gateway; yields the page's address.

    The room is one of this module's own: GetMediaEndpoint must name the relay that runs here.
    """
    # Started together: each mostly waits for its consumers to join and catch up.
    relay, presence, replay = await asyncio.gather(
        service_factory("media-relay"),
        service_factory("presence"),
        service_factory(
            "replay", env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path_factory.mktemp("replays")), **FAST_FINALIZE}
        ),
    )
    room = await service_factory("room", env={"PODIUM_ROOM_MEDIA_RELAYS": f"relay-0={relay.address}"})
    stun = await start_stun_server()
    ice_servers = [{"urls": [f"stun:127.0.0.1:{stun.port}"]}]
    http_port = free_port()
    gateway = await service_factory(
        "gateway",
        env={
            "PODIUM_GATEWAY_HTTP_PORT": str(http_port),
            "PODIUM_GATEWAY_ROOM_ADDRESS": room.address,
            "PODIUM_GATEWAY_PRESENCE_ADDRESS": presence.address,
            "PODIUM_GATEWAY_MODERATION_ADDRESS": moderation.address,
            "PODIUM_GATEWAY_REPLAY_ADDRESS": replay.address,
            "PODIUM_GATEWAY_PRESENCE_INTERVAL_SECONDS": "1",
            "PODIUM_GATEWAY_ICE_SERVERS": json.dumps(ice_servers),
        },
    )
    yield {
        "url": f"http://127.0.0.1:{http_port}",
        "gateway": gateway,
        "room": room,
        "stun": stun,
        "ice_servers": ice_servers,
    }
    stun.transport.close()
    # Killed after this package, not at the end of the session: the later tests get the CPU back. Nothing of
    # theirs is checked after this, so no drain is waited for.
    for service in (gateway, replay, presence, room, relay):
        service.kill()
        await service.channel.close()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
