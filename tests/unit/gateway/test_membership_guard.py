"""Audio only while the room lets someone in: the gateway's guard closes the streams of who left."""

from __future__ import annotations

import asyncio

from podium.presence.v1 import presence_service_pb2 as pb
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_types_pb2 as rt
from services.gateway.application.membership_guard import MembershipGuard


def left(user_id: str) -> pb.WatchSpaceResponse:
    return pb.WatchSpaceResponse(
        change=pt.MemberChange(kind=pt.MEMBER_CHANGE_KIND_LEFT, member=pt.SpaceMember(user_id=user_id))
    )


def ended() -> pb.WatchSpaceResponse:
    return pb.WatchSpaceResponse(
        space_change=pt.SpaceChange(
            kind=pt.SPACE_CHANGE_KIND_ENDED, space=pt.SpaceDetails(state=rt.SPACE_STATE_ENDED)
        )
    )


async def test_who_leaves_loses_their_streams_and_an_ended_space_closes_everyones():
    updates: asyncio.Queue = asyncio.Queue()
    watched: list[tuple[str, str]] = []
    closed: list[tuple[str, str | None]] = []

    async def watch(space_id: str, token: str):
        watched.append((space_id, token))
        while True:
            yield await updates.get()

    guard = MembershipGuard(watch, lambda space, user: closed.append((space, user)))
    guard.add("s1", "ana", "ana-token")
    guard.add("s1", "ben", "ben-token")
    for update in (left("stranger"), left("ben"), ended()):
        updates.put_nowait(update)
    async with asyncio.timeout(2):
        while len(closed) < 2:
            await asyncio.sleep(0.01)
    assert watched == [("s1", "ana-token")]  # one watch per Space, with a listener's own token
    assert closed == [("s1", "ben"), ("s1", None)]  # never for someone it does not hold
    guard.remove("s1", "ana")
    guard.remove("s1", "ben")
    assert guard.tasks == {}
    await guard.stop()
