"""Read-your-writes across services: a mute right after the promotion it needs is never refused.

The room answers `InviteToSpeak` with the Space's new version; moderation, given that version
(`room_version`), decides only once its view of the room has reached it. Without it a gateway
saw NOT_A_SPEAKER for 60-550 ms after every promotion, and could not tell that from a real
refusal.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.integration.clients import ModerationClient, RoomClient, error_reason

pytestmark = pytest.mark.integration

SPACES, SPEAKERS_EACH, AT_ONCE = 100, 10, 20  # 1,000 promotions, each muted at once


async def test_invite_then_mute_at_once_a_thousand_times_under_load_is_never_falsely_refused(
    room, moderation
):
    refusals: list[str] = []
    sem = asyncio.Semaphore(AT_ONCE)

    async def space(n: int) -> None:
        host = RoomClient(room.channel, f"ryw-host-{n}")
        host_mod = ModerationClient(moderation.channel, f"ryw-host-{n}")
        async with sem:
            space_id = (await host.CreateSpace(title=f"ryw {n}")).space.space_id
            await host.StartSpace(space_id=space_id)
        for i in range(SPEAKERS_EACH):
            async with sem:
                user = f"ryw-{n}-{i}"
                await RoomClient(room.channel, user).JoinSpace(space_id=space_id)
                promoted = await host.InviteToSpeak(space_id=space_id, user_id=user)
                try:
                    await host_mod.MuteParticipant(
                        space_id=space_id, user_id=user, room_version=promoted.space.version
                    )
                except grpc.aio.AioRpcError as e:
                    refusals.append(f"{user}: {e.code().name} {error_reason(e)} {e.details()}")

    await asyncio.gather(*(space(n) for n in range(SPACES)))
    assert refusals == [], f"{len(refusals)} of {SPACES * SPEAKERS_EACH} refused, e.g. {refusals[:3]}"


async def test_a_version_the_view_never_reaches_is_unavailable_with_a_retry_delay_not_a_refusal(
    room, moderation
):
    host = RoomClient(room.channel, "ryw-far-host")
    space_id = (await host.CreateSpace(title="far ahead")).space.space_id
    await host.StartSpace(space_id=space_id)
    with pytest.raises(grpc.aio.AioRpcError) as behind:
        await ModerationClient(moderation.channel, "ryw-far-host").MuteParticipant(
            space_id=space_id, user_id="ryw-far-host", room_version=10**9
        )
    assert behind.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(behind.value) == "VIEW_BEHIND"
    assert any(key == "grpc-status-details-bin" for key, _ in behind.value.trailing_metadata())
