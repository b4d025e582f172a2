"""Eviction in a hot Space: how long a listener the rules no longer admit stays in.

Part of `python -m bench.hot_space`. One Space holds `listeners` listeners, and
`storm_rate` joins/s keep arriving (new users) while:

  ban      the host has moderation remove `bans` of the listeners, open loop at `ban_rate`/s:
           RemoveParticipant (moderation) -> ParticipantRemoved -> the room's reaction ->
           ParticipantLeft(REMOVED);
  policy   then, once the storm's joins are answered, the host switches the Space to invite-only
           (UpdateSpace): the room's evictor takes every listener out, the storm's joiners too,
           ParticipantLeft(POLICY) for each.

Each eviction is timed from the call that caused it being sent to the room's ParticipantLeft
arriving on the room topic, where every other service reads it (so the relay, presence and replay
have it within their own consumer's delay). The room's own
`podium_room_eviction_seconds{cause}` (the disqualifying event's time to the append) is read too.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
from google.protobuf import field_mask_pb2
from prometheus_client.parser import text_string_to_metric_families

from bench.commands import open_loop_joins, percentile
from bench.stack import cpu_seconds
from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET, PodiumSettings
from libs.events.envelope import EventEnvelope, unwrap
from libs.events.kafka import make_reader, partitions_of
from libs.events.topics import ROOM_EVENTS
from podium.moderation.v1 import moderation_service_pb2 as mpb
from podium.moderation.v1 import moderation_service_pb2_grpc
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_service_pb2_grpc
from podium.room.v1 import room_types_pb2 as types

HOST = "evict-host"


def md(user: str):
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user, ttl_seconds=3600)}"),)


class LeftTail:
    """Reads the room topic from its end: when each ParticipantLeft of one Space arrived, by user."""

    def __init__(self, bootstrap: str, space_id: str):
        self.bootstrap = bootstrap
        self.space_id = space_id
        self.left: dict[str, tuple[float, int]] = {}  # user -> (arrived, reason)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._reader = make_reader(PodiumSettings(kafka_bootstrap_servers=self.bootstrap), "bench-evictions")
        await self._reader.start()
        parts = await partitions_of(self._reader, ROOM_EVENTS.name)
        self._reader.assign(parts)
        await self._reader.seek_to_end(*parts)
        for tp in parts:  # resolve the end now, so nothing published from here on is skipped
            await self._reader.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self._reader.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    envelope = EventEnvelope.FromString(record.value)
                    if envelope.space_id != self.space_id or not envelope.event_type.endswith(
                        "ParticipantLeft"
                    ):
                        continue
                    event = unwrap(envelope)
                    self.left.setdefault(event.user_id, (now, event.reason))

    async def wait_for(self, users: set[str], reason: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(u in self.left and self.left[u][1] == reason for u in users):
                return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._reader.stop()


def eviction_seconds(metrics_port: int) -> dict[str, tuple[float, float]]:
    """podium_room_eviction_seconds from the room's /metrics: cause -> (count, sum)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "podium_room_eviction_seconds":
            continue
        for sample in family.samples:
            cause = sample.labels.get("cause", "")
            if sample.name.endswith("_count"):
                found.setdefault(cause, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_sum"):
                found.setdefault(cause, [0.0, 0.0])[1] = sample.value
    return {cause: (count, total) for cause, (count, total) in found.items()}


def summary(delays: list[float], expected: int) -> dict:
    return {
        "expected": expected,
        "evicted": len(delays),
        "p50_ms": round(percentile(delays, 0.50) * 1000, 1),
        "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        "max_ms": round(max(delays, default=float("nan")) * 1000, 1),
    }


async def measure(
    room_address: str,
    room_metrics_port: int,
    room_pid: int,
    moderation_address: str,
    bootstrap: str,
    *,
    listeners: int,
    storm_rate: float,
    bans: int,
    ban_rate: float,
) -> dict:
    async with (
        grpc.aio.insecure_channel(room_address) as room_channel,
        grpc.aio.insecure_channel(moderation_address) as moderation_channel,
    ):
        rooms = room_service_pb2_grpc.RoomServiceStub(room_channel)
        mods = moderation_service_pb2_grpc.ModerationServiceStub(moderation_channel)
        created = await rooms.CreateSpace(rpb.CreateSpaceRequest(title="eviction bench"), metadata=md(HOST))
        space_id = created.space.space_id
        await rooms.StartSpace(rpb.StartSpaceRequest(space_id=space_id), metadata=md(HOST))
        fill = await open_loop_joins(
            room_address, DEV_JWT_SECRET, 800, listeners / 800, [space_id], user_prefix="evict-listener-"
        )
        present = sorted(fill.acked_at)
        await asyncio.sleep(2.0)  # moderation's view of the room has every listener
        tail = LeftTail(bootstrap, space_id)
        await tail.start()
        try:
            # Bans, open loop, while new listeners keep joining the same Space.
            banned = present[:bans]
            sent: dict[str, float] = {}

            async def ban(user: str) -> None:
                sent[user] = time.time()
                request = mpb.RemoveParticipantRequest(
                    space_id=space_id, user_id=user, reason="bench", request_id=f"bench-ban-{user}"
                )
                for attempt in range(10):  # as a gateway would: UNAVAILABLE is retried, same request id
                    try:
                        await mods.RemoveParticipant(request, metadata=md(HOST), timeout=30)
                        return
                    except grpc.aio.AioRpcError as error:
                        if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 9:
                            raise
                        await asyncio.sleep(0.2)

            async def bans_open_loop() -> None:
                loop = asyncio.get_running_loop()
                start, calls = loop.time(), []
                for n, user in enumerate(banned):
                    await asyncio.sleep(max(0.0, start + n / ban_rate - loop.time()))
                    calls.append(asyncio.create_task(ban(user)))
                await asyncio.gather(*calls)

            storm = asyncio.create_task(
                open_loop_joins(
                    room_address,
                    DEV_JWT_SECRET,
                    storm_rate,
                    bans / ban_rate + 1.0,
                    [space_id],
                    user_prefix="evict-storm-",
                )
            )
            await bans_open_loop()
            storm_result = await storm
            await tail.wait_for(set(banned), rev.LEAVE_REASON_REMOVED, timeout=30)
            ban_delays = [tail.left[u][0] - sent[u] for u in banned if u in tail.left]
            metric_before = eviction_seconds(room_metrics_port).get("policy", (0.0, 0.0))

            # The switch to invite-only: every listener still in goes.
            inside = set(present[bans:]) | set(storm_result.acked_at)
            switched_at = time.time()
            cpu_before = cpu_seconds(room_pid)
            await rooms.UpdateSpace(
                rpb.UpdateSpaceRequest(
                    space_id=space_id,
                    join_policy=types.JOIN_POLICY_INVITED_ONLY,
                    update_mask=field_mask_pb2.FieldMask(paths=["join_policy"]),
                ),
                metadata=md(HOST),
            )
            await tail.wait_for(inside, rev.LEAVE_REASON_POLICY, timeout=120)
            room_cpu = cpu_seconds(room_pid) - cpu_before
            policy_delays = [tail.left[u][0] - switched_at for u in inside if u in tail.left]
            metric_after = eviction_seconds(room_metrics_port).get("policy", (0.0, 0.0))
            ban_metric = eviction_seconds(room_metrics_port).get("ban", (0.0, 0.0))
        finally:
            await tail.stop()
    policy_count = metric_after[0] - metric_before[0]
    return {
        "listeners": len(present),
        "storm_joins_per_s": storm_rate,
        "storm_acknowledged": storm_result.acknowledged,
        "storm_errors": storm_result.errors,
        "ban_rate_per_s": ban_rate,
        "ban": summary(ban_delays, len(banned))
        | {"room_metric_mean_ms": round(ban_metric[1] / ban_metric[0] * 1000, 1) if ban_metric[0] else None},
        "policy": summary(policy_delays, len(inside))
        | {
            "room_metric_mean_ms": round((metric_after[1] - metric_before[1]) / policy_count * 1000, 1)
            if policy_count
            else None,
            "evictions_per_s": round(len(policy_delays) / max(policy_delays), 1) if policy_delays else None,
            # the room's CPU from the switch to the last ParticipantLeft seen: what an eviction costs
            "room_cpu_us_per_eviction": round(room_cpu / len(policy_delays) * 1e6, 1)
            if policy_delays
            else None,
        },
    }
