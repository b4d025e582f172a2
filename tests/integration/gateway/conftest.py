"""The services the web client needs, and the gateway in front of them, for the browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.devstack.broker import free_port

FAST_FINALIZE = {
    "PODIUM_REPLAY_FINALIZE_DELAY_SECONDS": "0.3",
    "PODIUM_REPLAY_FINALIZE_POLL_SECONDS": "0.2",
}
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web-client"


@pytest.fixture(scope="module")
async def web_stack(service_factory, moderation, tmp_path_factory):
    """Relay, a room that names it, presence, replay and the gateway; yields the page's address.

    The room is one of this module's own: GetMediaEndpoint must name the relay that runs here.
    """
    relay = await service_factory("media-relay")
    room = await service_factory("room", env={"PODIUM_ROOM_MEDIA_RELAYS": f"relay-0={relay.address}"})
    presence = await service_factory("presence")
    replay = await service_factory(
        "replay", env={"PODIUM_REPLAY_BLOB_DIR": str(tmp_path_factory.mktemp("replays")), **FAST_FINALIZE}
    )
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
        },
    )
    yield {"url": f"http://127.0.0.1:{http_port}", "gateway": gateway, "room": room}
    # Stopped now, not at the end of the session: the later tests get the CPU back.
    for service in (gateway, replay, presence, room, relay):
        await service.stop()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
