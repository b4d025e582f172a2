"""Replay follows the Space's policy, over real gRPC: an invite-only recording is for those it admitted.

Two recorded Spaces of one host, an invite-only one and a public one, each asserted
for every replay call that shows content, as the host, an invited guest who joined,
an invited user who never came, a stranger, and trust and safety.
"""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from podium.replay.v1 import replay_types_pb2 as rt
from podium.room.v1 import room_types_pb2 as room_types
from tests.integration.clients import RoomClient, error_reason
from tests.integration.replay.conftest import ReplayClient, until_ready
from tests.support.opus_tones import recording_chunks, tone_packets

pytestmark = pytest.mark.integration
HOST, GUEST, ABSENT, STRANGER, REVIEWER = "rv-host", "rv-guest", "rv-absent", "rv-stranger", "rv-reviewer"


async def recorded_space(room, replay, media_log, policy: int, title: str) -> str:
    """A recorded Space where the host talked and the guest (invited, if it is invite-only) listened."""
    host = RoomClient(room.channel, HOST)
    space_id = (
        await host.CreateSpace(title=title, recording_enabled=True, join_policy=policy)
    ).space.space_id
    if policy == room_types.JOIN_POLICY_INVITED_ONLY:
        await host.InviteUsers(space_id=space_id, user_ids=[GUEST, ABSENT])
    await host.StartSpace(space_id=space_id)
    await RoomClient(room.channel, GUEST).JoinSpace(space_id=space_id)
    await media_log.chunks(recording_chunks(space_id, HOST, tone_packets(440, 0.5), datetime.now(UTC)))
    await host.EndSpace(space_id=space_id)
    await until_ready(ReplayClient(replay.channel, HOST), space_id)  # every view has seen it all
    return space_id


@pytest.fixture(scope="module")
async def spaces(room, replay, media_log):
    private = await recorded_space(room, replay, media_log, room_types.JOIN_POLICY_INVITED_ONLY, "Invited")
    public = await recorded_space(room, replay, media_log, room_types.JOIN_POLICY_ANYONE, "Open")
    return {"private": private, "public": public}


def client(replay, user_id: str) -> ReplayClient:
    roles = ("trust-and-safety",) if user_id == REVIEWER else ()
    return ReplayClient(replay.channel, user_id, roles=roles)


async def sees(replay_client: ReplayClient, space_id: str) -> None:
    """Every content call answers: the replay, its audio, its file and the Space at its end."""
    got = (await replay_client.GetReplay(space_id=space_id)).replay
    assert got.state == rt.REPLAY_STATE_READY and got.timeline
    frames = [m async for m in replay_client.stream("StreamReplay", space_id=space_id, speed=0)]
    assert len(frames) >= 20 and all(f.opus for f in frames)
    chunks = [m async for m in replay_client.stream("DownloadReplay", space_id=space_id)]
    assert chunks and sum(len(c.chunk) for c in chunks) == chunks[-1].total_size == got.size_bytes
    at = Timestamp()
    at.FromDatetime(got.ended_at.ToDatetime(tzinfo=UTC))
    assert (await replay_client.GetSpaceStateAt(space_id=space_id, at=at)).status == "ended"


async def is_refused(replay_client: ReplayClient, space_id: str) -> None:
    """Every content call refuses, with PERMISSION_DENIED and the same reason; nothing leaks."""
    at = Timestamp()
    at.GetCurrentTime()
    calls = {
        "GetReplay": replay_client.GetReplay(space_id=space_id),
        "StreamReplay": replay_client.stream("StreamReplay", space_id=space_id, speed=0).read(),
        "DownloadReplay": replay_client.stream("DownloadReplay", space_id=space_id).read(),
        "GetSpaceStateAt": replay_client.GetSpaceStateAt(space_id=space_id, at=at),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, caught.value.details())
        assert error_reason(caught.value) == "REPLAY_NOT_VISIBLE", name
        assert "invite-only" in caught.value.details()


async def listed(replay_client: ReplayClient) -> set[str]:
    return {r.space_id for r in (await replay_client.ListReplays(host_id=HOST)).replays}


@pytest.mark.parametrize("user_id", [HOST, GUEST, REVIEWER])
async def test_an_invite_only_replay_is_for_its_host_its_admitted_guests_and_trust_and_safety(
    spaces, replay, user_id
):
    viewer = client(replay, user_id)
    await sees(viewer, spaces["private"])
    assert {spaces["private"], spaces["public"]} <= await listed(viewer)


@pytest.mark.parametrize("user_id", [STRANGER, ABSENT])
async def test_an_invite_only_replay_is_refused_to_strangers_and_to_the_invited_who_never_joined(
    spaces, replay, user_id
):
    outsider = client(replay, user_id)
    await is_refused(outsider, spaces["private"])
    shown = await listed(outsider)
    assert spaces["public"] in shown  # the positive marker: the list is complete up to both Spaces
    assert spaces["private"] not in shown


async def test_a_public_replay_stays_open_to_a_stranger(spaces, replay):
    await sees(client(replay, STRANGER), spaces["public"])
