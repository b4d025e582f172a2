"""A restarted relay resumes its admission view from its stored positions, and still judges right."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from podium.media.v1 import media_service_pb2_grpc
from services.media_relay.projections.space_media_rows import SpaceMediaRows
from tests.integration.clients import ModerationClient, RoomClient, error_reason
from tests.integration.conftest import eventually
from tests.integration.media_relay.gateway import frame
from tests.integration.media_relay.test_media_relay import live_space
from tests.support.audio import tone_frames
from tests.support.auth import bearer

pytestmark = pytest.mark.integration

OPUS = tone_frames(440, 0.02)[0]


async def heard(relay, space_id: str, user: str) -> str:
    """One frame from `user`: FORWARDED, or the reason the relay gives for refusing it."""
    stub = media_service_pb2_grpc.MediaRelayServiceStub(relay.channel)

    async def one():
        yield frame(space_id, user, 0, OPUS)

    try:
        reply = await stub.Publish(one(), metadata=bearer(user), timeout=10)
    except grpc.aio.AioRpcError as e:
        return error_reason(e) or e.code().name
    return "FORWARDED" if reply.frames_forwarded == 1 else "REFUSED"


async def until_heard(relay, space_id: str, user: str, expected: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while (verdict := await heard(relay, space_id, user)) != expected:
            await asyncio.sleep(0.05)
    assert verdict == expected


async def stored_positions(conn) -> int:
    """The offsets the relay's admission view has stored, summed over its partitions."""
    stored = await conn.fetchval(
        "SELECT sum(next_offset) FROM media_relay.view_positions WHERE view = 'media-relay-spaces'"
    )
    return int(stored or 0)


async def settled_log_end(bootstrap: str, *, more_than: int) -> int:
    """The end offsets of the topics the relay reads, summed, once above `more_than` and unchanged
    for a second (the outboxes publish shortly after a call returns)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-relay-resume")
    await reader.start()
    try:
        parts = [p for topic in SpaceMediaRows.topics for p in await partitions_of(reader, topic.name)]
        reader.assign(parts)
        last = None
        async with asyncio.timeout(20):
            while True:
                end = sum((await log_end_offsets(reader, parts)).values())
                if end > more_than and end == last:
                    return end
                last = end
                await asyncio.sleep(1.0)
    finally:
        await reader.stop()


def caught_up_lines(relay, view: str) -> list[str]:
    return [
        line
        for line in relay.process.log_path.read_text(errors="replace").splitlines()
        if f"projection {view} caught up" in line
    ]


async def test_a_restarted_relay_resumes_from_its_stored_positions_and_still_admits_and_refuses(
    service_factory, private_broker, private_database_url
):
    async def start(name: str):
        return await service_factory(name, broker=private_broker, database=private_database_url)

    room, moderation, relay = await asyncio.gather(start("room"), start("moderation"), start("media-relay"))
    talk = await live_space(room, "rr-host", speakers=["rr-spk", "rr-spk2"], listeners=["rr-fan"])
    quiet = await live_space(room, "rr-host2", speakers=["rr-quiet"])
    over = await live_space(room, "rr-host3")
    await eventually(
        lambda: ModerationClient(moderation.channel, "rr-host2").MuteParticipant(
            space_id=quiet, user_id="rr-quiet"
        )
    )
    await RoomClient(room.channel, "rr-host3").EndSpace(space_id=over)
    await until_heard(relay, talk, "rr-spk", "FORWARDED")
    await until_heard(relay, quiet, "rr-quiet", "MUTED")
    await until_heard(relay, over, "rr-host3", "SPACE_ENDED")
    conn = await asyncpg.connect(private_database_url)
    try:
        # The relay's writer has stored what it read so far.
        async with asyncio.timeout(15):
            while not (await stored_positions(conn) and caught_up_lines(relay, "media-relay-spaces")):
                await asyncio.sleep(0.1)
        await relay.terminate()
        stored = await stored_positions(conn)  # final: the relay is down
        # While the relay is down, one event: the host mutes a speaker.
        await ModerationClient(moderation.channel, "rr-host").MuteParticipant(
            space_id=talk, user_id="rr-spk2"
        )
        # What the relay had not stored: the mute, and whatever the services' outboxes published
        # after the relay's last stored batch, counted from the log itself.
        end = await settled_log_end(private_broker.bootstrap, more_than=stored)
        await relay.restart()

        # Resumed: each view applied what was written after its stored position, not the history.
        for view in ("media-relay-spaces", "media-relay-spaces-cache"):
            lines = caught_up_lines(relay, view)
            assert len(lines) == 2, lines
            assert f"caught up: {end - stored} events" in lines[1], (stored, end, lines[1])
        assert end - stored < stored

        # And it judges as before: the snapshot's mute, the mute made while down, the end, the roles.
        assert await heard(relay, talk, "rr-spk") == "FORWARDED"
        assert await heard(relay, talk, "rr-spk2") == "MUTED"
        assert await heard(relay, quiet, "rr-quiet") == "MUTED"
        assert await heard(relay, talk, "rr-fan") == "NOT_A_SPEAKER"
        assert await heard(relay, over, "rr-host3") == "SPACE_ENDED"
        assert await heard(relay, "no-such-space", "rr-host") == "SPACE_NOT_FOUND"
        # Events after the restart reach it too.
        await RoomClient(room.channel, "rr-host").RevokeSpeaker(space_id=talk, user_id="rr-spk")
        await until_heard(relay, talk, "rr-spk", "NOT_A_SPEAKER")

        rows = await conn.fetch("SELECT space_id, state FROM media_relay.space_media_v1 ORDER BY space_id")
        assert {r["space_id"] for r in rows} == {talk, quiet, over}
        members = await conn.fetchval(
            "SELECT count(*) FROM media_relay.space_media_members_v1 WHERE space_id = $1", over
        )
        assert members == 0  # an ended Space keeps its row, not its entries
    finally:
        await conn.close()
