"""Per-user rate limits on joins, requests to speak, invites and reports: over the limit is
RESOURCE_EXHAUSTED with a retry delay, changes nothing, and other users are not affected."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.integration.clients import ModerationClient, RoomClient

pytestmark = pytest.mark.integration

LIMITS = {
    "PODIUM_RATE_LIMIT_JOINS_PER_MINUTE": "2",
    "PODIUM_RATE_LIMIT_SPEAK_REQUESTS_PER_MINUTE": "2",
    "PODIUM_RATE_LIMIT_INVITES_PER_MINUTE": "2",
    "PODIUM_RATE_LIMIT_REPORTS_PER_MINUTE": "2",
}


def _retry_delay(error: grpc.aio.AioRpcError) -> float:
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(raw)
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo in the status details")


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "a minute" in refused.value.details()
    assert 0 < _retry_delay(refused.value) <= 30
    return refused.value


async def test_joins_speak_requests_invites_and_reports_are_limited_per_user(
    service_factory, private_broker, private_database_url
):
    room, moderation = await asyncio.gather(
        *(
            service_factory(name, broker=private_broker, database=private_database_url, env=LIMITS)
            for name in ("room", "moderation")
        )
    )
    host = RoomClient(room.channel, "limit-host")
    spaces = []
    for title in ("a", "b", "c"):
        space_id = (await host.CreateSpace(title=title)).space.space_id
        await host.StartSpace(space_id=space_id)
        spaces.append(space_id)
    hopper = RoomClient(room.channel, "hopper")
    await hopper.JoinSpace(space_id=spaces[0])
    await hopper.JoinSpace(space_id=spaces[1])
    await _refused(hopper.JoinSpace(space_id=spaces[2]))
    members = await host.ListParticipants(space_id=spaces[2])
    assert "hopper" not in {p.user_id for p in members.participants}  # the refusal changed nothing
    await RoomClient(room.channel, "calm").JoinSpace(space_id=spaces[2])  # others are not affected

    await hopper.RequestToSpeak(space_id=spaces[0])
    await hopper.WithdrawSpeakRequest(space_id=spaces[0])
    await hopper.RequestToSpeak(space_id=spaces[0])
    await hopper.WithdrawSpeakRequest(space_id=spaces[0])
    await _refused(hopper.RequestToSpeak(space_id=spaces[0]))

    await host.InviteUsers(space_id=spaces[0], user_ids=["x1"])
    await host.CreateInviteLink(space_id=spaces[0])
    await _refused(host.InviteUsers(space_id=spaces[0], user_ids=["x2"]))

    reporter = ModerationClient(moderation.channel, "hopper")
    # Read-your-writes: moderation answers once its view has the Space as the room has it now (that
    # hopper is in), never a false "only participants" from a view a moment behind.
    seen = (await host.GetSpace(space_id=spaces[0])).space.version
    for _ in range(2):
        await reporter.ReportSpace(space_id=spaces[0], reason=1, text="spam", room_version=seen)
    await _refused(reporter.ReportSpace(space_id=spaces[0], reason=1, text="spam", room_version=seen))
