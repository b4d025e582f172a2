"""Read-your-writes across services: a mute right after the promotion it needs is never refused.

The room answers `InviteToSpeak` with the Space's new version; moderation, given that version
(`room_version`), decides only once its view of the room has reached it. Without it a gateway
saw NOT_A_SPEAKER for 60-550 ms after every promotion, and could not tell that from a real
refusal. A listener's join through a listener shard moves no `Space.version`: its answer's
`room_token` names the shard, and moderation given it waits for the shard join too.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.integration.clients import ModerationClient, RoomClient, error_reason, field_violations

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


FANS, REPORTS_AT_ONCE = 300, 30


async def test_a_listener_joined_through_a_shard_reports_at_once_with_the_joins_token(
    service_factory, moderation
):
    """A report is for participants: right after a join recorded on a shard, moderation's view may
    not have it, and `room_version` cannot say so. 300 fans join a Space that grows shards, each
    reporting it at once with its join's token: none is refused."""
    sharded = await service_factory("room", env={"PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND": "5"})
    try:
        host = RoomClient(sharded.channel, "ryw-star")
        space_id = (await host.CreateSpace(title="celebrity")).space.space_id
        await host.StartSpace(space_id=space_id)
        refusals: list[str] = []
        tokens: list[str] = []
        sem = asyncio.Semaphore(REPORTS_AT_ONCE)

        async def fan(n: int) -> None:
            user = f"ryw-fan-{n}"
            async with sem:
                joined = await RoomClient(sharded.channel, user).JoinSpace(space_id=space_id)
                tokens.append(joined.space.room_token)
                try:
                    await ModerationClient(moderation.channel, user).ReportSpace(
                        space_id=space_id, reason=1, text="spam", room_token=joined.space.room_token
                    )
                except grpc.aio.AioRpcError as e:
                    refusals.append(f"{user}: {e.code().name} {error_reason(e)} {e.details()}")

        await asyncio.gather(*(fan(n) for n in range(FANS)))
        assert refusals == [], f"{len(refusals)} of {FANS} refused, e.g. {refusals[:3]}"
        on_shards = [t for t in tokens if ";l" in t]
        assert len(on_shards) > FANS // 2, f"the Space grew shards late: {tokens[:5]}"

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await ModerationClient(moderation.channel, "ryw-fan-0").ReportSpace(
                space_id=space_id, reason=1, text="spam", room_token="12;l3"
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "room_token" in field_violations(bad.value)
    finally:
        await sharded.stop()
