"""Open-loop JoinSpace load, and how long each join takes to be visible elsewhere.

Sends JoinSpace on a fixed schedule (`rate` per second for `duration`
seconds, spread over `spaces` live Spaces, a new user each time) without
waiting for replies, so a slow server shows up as latency, not as fewer
requests. Each join is timed twice: until its gRPC answer (acknowledged), and
until a second process's projection has applied it (visible).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc

from libs.auth.tokens import mint_token
from podium.room.v1 import room_service_pb2 as pb
from podium.room.v1 import room_service_pb2_grpc


@dataclass
class LoadResult:
    planned: int
    sent_at: dict[str, float] = field(default_factory=dict)
    acked_at: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    max_lag: float = 0.0

    @property
    def acknowledged(self) -> int:
        return len(self.acked_at)


async def create_live_spaces(stub, secret: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        host = f"bench-host-{i}"
        md = (("authorization", f"Bearer {mint_token(secret, host, ttl_seconds=3600)}"),)
        created = await stub.CreateSpace(pb.CreateSpaceRequest(title=f"bench space {i}"), metadata=md)
        await stub.StartSpace(pb.StartSpaceRequest(space_id=created.space.space_id), metadata=md)
        ids.append(created.space.space_id)
    return ids


async def open_loop_joins(
    address: str | list[str],
    secret: str,
    rate: float,
    duration: float,
    spaces: list[str],
    user_prefix: str = "bench-user-",
    *,
    alternate: bool = False,
) -> LoadResult:
    """With several addresses (room replicas), calls go round robin over them. Call i joins Space
    i mod len(spaces): with an even number of Spaces and two replicas, each Space's joins all go to
    one replica. With `alternate`, consecutive calls join the same Space, so each Space's joins
    alternate over the replicas, as behind a balancer that knows nothing of Spaces."""
    total = int(rate * duration)
    result = LoadResult(planned=total)
    users = [f"{user_prefix}{i}" for i in range(total)]
    # Tokens are minted before the clock starts: signing is the gateway's cost, not ours.
    tokens = [(("authorization", f"Bearer {mint_token(secret, u, ttl_seconds=3600)}"),) for u in users]
    addresses = [address] if isinstance(address, str) else address
    channels = [grpc.aio.insecure_channel(addresses[i % len(addresses)]) for i in range(4 * len(addresses))]
    stubs = [room_service_pb2_grpc.RoomServiceStub(c) for c in channels]
    tasks = []
    per_space = len(addresses) if alternate else 1

    async def join(i: int) -> None:
        user = users[i]
        request = pb.JoinSpaceRequest(space_id=spaces[i // per_space % len(spaces)], request_id=f"bench-{i}")
        try:
            await stubs[i % len(stubs)].JoinSpace(request, metadata=tokens[i], timeout=30)
            result.acked_at[user] = time.time()
        except grpc.aio.AioRpcError as e:
            result.errors[e.code().name] = result.errors.get(e.code().name, 0) + 1

    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_lag = max(result.max_lag, -delay)
        result.sent_at[users[i]] = time.time()
        tasks.append(asyncio.create_task(join(i)))
    await asyncio.gather(*tasks)
    result.duration = loop.time() - start
    for channel in channels:
        await channel.close()
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
