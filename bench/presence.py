"""Presence heartbeat ingest: `python -m bench.presence`.

100,000 simulated listeners in 1,000 Spaces, held by 10 gateways that report
in batches. Two phases, against a real broker and a presence process:

1. join: every listener reported once, as fast as the gateways can send;
   measured until every `ParticipantConnected` is on the presence topic.
   Memory: the presence process's RSS before and after, per 10,000 present users.
2. steady, starting right after the joins are sent (gateways keep beating while
   joins are processed): heartbeats for everyone, open loop at a fixed entries/s
   for a fixed time (each listener beats every listeners/rate seconds); measured
   until the faust consumer group has committed what the heartbeat topic held
   when that time was up, with the presence process's CPU for everything.
   The gateways go on beating at the same rate while that backlog drains, as real
   ones would (those later entries are not counted; their CPU is), so any
   `ParticipantTimedOut` seen by then is a wrong timeout: everyone kept beating.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import grpc

from bench.stack import BenchStack, cpu_seconds, rss_bytes, run_header
from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET, PodiumSettings
from libs.events.envelope import decode
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.topics import PRESENCE_EVENTS, PRESENCE_HEARTBEATS
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_service_pb2 as pb
from podium.presence.v1 import presence_service_pb2_grpc
from podium.presence.v1 import presence_types_pb2 as pt
from tests.support.room_log import announce_spaces


class EventCounter:
    """Counts presence events from the topic, in the background."""

    def __init__(self, bootstrap: str):
        self.reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "bench-presence-events")
        self.connected = 0
        self.timed_out = 0
        self.connected_users: set[str] = set()  # a user announced twice counts once here
        self.positions: set[tuple[str, int]] = set()  # (stream, version): a record written twice
        self.records = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.reader.start()
        parts = await partitions_of(self.reader, PRESENCE_EVENTS.name)
        self.reader.assign(parts)
        await self.reader.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for records in (await self.reader.getmany(timeout_ms=100, max_records=5000)).values():
                for record in records:
                    envelope, payload = decode(record.value)
                    self.records += 1
                    self.positions.add((envelope.stream_id, envelope.stream_version))
                    if isinstance(payload, pev.ParticipantConnected):
                        self.connected += 1
                        self.connected_users.add(payload.user_id)
                    elif isinstance(payload, pev.ParticipantTimedOut):
                        self.timed_out += 1

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.reader.stop()


def gateway_batches(listeners: int, spaces: int, gateways: int, batch: int) -> list[tuple[str, list]]:
    """(gateway, entries) batches covering every listener once."""
    per_gateway: dict[str, list] = {f"gw-{g}": [] for g in range(gateways)}
    for i in range(listeners):
        entry = pt.PresenceEntry(user_id=f"listener-{i}", space_id=f"bench-space-{i % spaces}")
        per_gateway[f"gw-{i % gateways}"].append(entry)
    return [
        (gw, entries[j : j + batch])
        for gw, entries in per_gateway.items()
        for j in range(0, len(entries), batch)
    ]


async def log_ends(bootstrap: str, topic: str) -> dict:
    """Each partition's end offset, as the records say (the dev broker reports it short)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "bench-ends")
    await reader.start()
    try:
        parts = await partitions_of(reader, topic)
        reader.assign(parts)
        return await log_end_offsets(reader, parts)
    finally:
        await reader.stop()


async def group_lag(bootstrap: str, group: str, ends: dict) -> int:
    """Records before `ends` that `group` has not committed yet (OffsetFetch, without joining the group)."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "bench-lag", group_id=group)
    await reader.start()
    try:
        lag = 0
        for tp, end in ends.items():
            lag += max(0, end - ((await reader.committed(tp)) or 0))
        return lag
    finally:
        await reader.stop()


async def main(args) -> dict:
    async with BenchStack() as stack:
        presence = await stack.start(
            "presence",
            {"PODIUM_LOG_LEVEL": "WARNING", "PODIUM_PRESENCE_USERS_PER_PART": str(args.users_per_part)},
        )
        pid = presence.process.pid
        counter = EventCounter(stack.bootstrap)
        await counter.start()
        batches = gateway_batches(args.listeners, args.spaces, args.gateways, args.batch)
        # Each gateway reports with its own gateway token, for Spaces the room created.
        tokens = {gw: mint_token(DEV_JWT_SECRET, gw, roles=[GATEWAY_ROLE]) for gw, _ in batches}
        metadata = {gw: (("authorization", f"Bearer {token}"),) for gw, token in tokens.items()}
        channel = grpc.aio.insecure_channel(
            presence.address, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        stub = presence_service_pb2_grpc.PresenceServiceStub(channel)
        spaces = sorted({e.space_id for _, es in batches for e in es})
        await announce_spaces(stack.bootstrap, spaces, presence=channel)
        requests = [pb.ReportPresenceRequest(gateway_id=gw, entries=entries) for gw, entries in batches]

        rss_before = rss_bytes(pid)
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        for start in range(0, len(requests), args.gateways):  # the gateways send side by side
            await asyncio.gather(
                *(
                    stub.ReportPresence(r, metadata=metadata[r.gateway_id])
                    for r in requests[start : start + args.gateways]
                )
            )
        sent = time.perf_counter() - started
        joined_at: list[float] = []

        async def all_connected() -> None:
            while counter.connected < args.listeners:
                await asyncio.sleep(0.05)
            joined_at.append(time.perf_counter() - started)

        joining = asyncio.create_task(all_connected())
        # The gateways go on beating for everyone while the joins are processed, as real ones do.
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        beats = {"sent": 0, "index": 0}
        pending: list = []

        async def beat_until(total: float) -> None:
            """Open loop from t0: the n-th entry is due at n / rate, whatever the answers do."""
            while beats["sent"] < total:
                due = t0 + (beats["sent"] / args.rate)
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)
                request = requests[beats["index"] % len(requests)]
                pending.append(
                    asyncio.ensure_future(stub.ReportPresence(request, metadata=metadata[request.gateway_id]))
                )
                beats["sent"] += len(request.entries)
                beats["index"] += 1

        await beat_until(int(args.rate * args.duration))
        sent_entries = beats["sent"]
        await asyncio.gather(*pending)
        sending = loop.time() - t0
        measured_ends = await log_ends(stack.bootstrap, PRESENCE_HEARTBEATS.name)
        keep_beating = asyncio.create_task(beat_until(float("inf")))
        # Bounded waits: on an overloaded machine the broker may not keep up; then the
        # result says how much was left instead of the benchmark never ending.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(joining), args.drain_timeout)
        rss_after = rss_bytes(pid)
        present = counter.connected  # users the table holds when RSS is read (all, unless overloaded)
        deadline = loop.time() + args.drain_timeout
        while (lag := await group_lag(stack.bootstrap, "podium-presence", measured_ends)) > 0:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        drained = loop.time() - t0
        cpu = cpu_seconds(pid) - cpu_before
        await asyncio.sleep(1.0)  # still beating: events of what was processed reach the counter
        wrong_timeouts = counter.timed_out
        keep_beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keep_beating
        for call in pending:
            call.cancel()
        joining.cancel()
        joined = joined_at[0] if joined_at else float("nan")
        connected = counter.connected
        await counter.stop()
        await channel.close()
        return {
            **run_header(),
            "listeners": args.listeners,
            "spaces": args.spaces,
            "gateways": args.gateways,
            "batch_entries": args.batch,
            "users_per_part": args.users_per_part,
            "join_send_s": round(sent, 2),
            "join_all_connected_s": round(joined, 2),
            "join_entries_per_s": round(args.listeners / joined) if joined == joined else None,
            "connected_seen": connected,
            "connected_users_distinct": len(counter.connected_users),
            "event_records_written_twice": counter.records - len(counter.positions),
            "heartbeat_records_not_committed_at_end": lag,
            "drained": lag <= 0,
            "rss_per_10k_users_mb": round((rss_after - rss_before) / (max(1, present) / 10_000) / 2**20, 2),
            "present_when_rss_read": present,
            "steady_offered_entries_per_s": args.rate,
            "steady_entries": sent_entries,
            "steady_send_s": round(sending, 2),
            "all_processed_s": round(drained, 2),
            "all_entries": sent_entries + args.listeners,
            "processed_entries_per_s": round((sent_entries + args.listeners) / (drained + sent)),
            "presence_cpu_s": round(cpu, 2),
            "entries_per_cpu_second": round((sent_entries + args.listeners) / cpu) if cpu else None,
            "wrong_timeouts": wrong_timeouts,
        }


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listeners", type=int, default=100_000)
    parser.add_argument("--spaces", type=int, default=1_000)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2_000, help="entries per ReportPresence call")
    parser.add_argument(
        "--rate", type=float, default=20_000, help="steady heartbeat entries per second offered"
    )
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument(
        "--users-per-part",
        type=int,
        default=2_000,
        help="PODIUM_PRESENCE_USERS_PER_PART: a Space splits past this many users a part",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=90, help="longest wait for the joins, and for the backlog"
    )
    result = run(main(parser.parse_args()), "uvloop")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
