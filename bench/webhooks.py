"""Webhook delivery: event → POST latency at a steady rate, and how fast a backlog drains.

    python -m bench.webhooks [--rate 500] [--seconds 20] [--spaces 100] [--backlog 10000]

Against the real webhooks service (its own process, on a fresh broker and
database), with a gateway's webhook for every event type pointing at an aiohttp
receiver in this process that answers 204 at once:

1. **steady**: room events (joins and leaves over `--spaces` live Spaces) are
   written to `podium.room.events.v1` open loop at `--rate` per second for
   `--seconds`, each stamped `occurred_at` as it is sent, as the room's relay
   would. Latency is from that stamp to the POST arriving at the receiver:
   the log, the delivery-queue view's transaction, the worker, HTTP.
2. **backlog**: `--backlog` events are written at once, then the time until the
   last arrives gives the deliveries per second the service sustains.

Every event must arrive once (counted by `Idempotency-Key`) and, per Space,
in order; both are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import grpc
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.commands import percentile
from bench.stack import BenchStack, cpu_seconds, run_header
from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from libs.events.envelope import Causation, wrap
from libs.events.topics import ROOM_EVENTS
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from podium.webhooks.v1 import webhook_service_pb2 as pb
from podium.webhooks.v1 import webhook_service_pb2_grpc

CAUSE = Causation("bench", "bench", "bench")


@dataclass
class Received:
    """What the receiver saw: per event id, when it arrived and when it occurred."""

    arrived: dict[str, float] = field(default_factory=dict)
    occurred: dict[str, float] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)  # per Space, event ids as they arrived
    duplicates: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        event = json.loads(body)
        if event["id"] in self.arrived:
            self.duplicates += 1
        else:
            self.arrived[event["id"]] = now
            self.occurred[event["id"]] = datetime.fromisoformat(event["occurred_at"]).timestamp()
            self.order.setdefault(event["space_id"], []).append(event["id"])
            self.changed.set()
        return web.Response(status=204)


class Spaces:
    """Live Spaces whose people come and go: the next event of each, with its stream version."""

    def __init__(self, count: int):
        self.ids = [str(uuid.uuid4()) for _ in range(count)]
        self.versions = dict.fromkeys(self.ids, 0)
        self.sent: dict[str, list[str]] = {s: [] for s in self.ids}
        self.n = 0

    def next(self):
        space_id = self.ids[self.n % len(self.ids)]
        k = self.n // len(self.ids)
        self.n += 1
        user = f"u{k // 2}"
        payload = (
            ev.ParticipantJoined(space_id=space_id, user_id=user, role=types.ROLE_LISTENER)
            if k % 2 == 0
            else ev.ParticipantLeft(space_id=space_id, user_id=user, reason=ev.LEAVE_REASON_LEFT)
        )
        self.versions[space_id] += 1
        envelope = wrap(
            payload,
            producer="room",
            stream_id=f"space-{space_id}",
            version=self.versions[space_id],
            space_id=space_id,
            occurred_at=datetime.now(UTC),
            causation=CAUSE,
        )
        self.sent[space_id].append(envelope.event_id)
        return space_id, envelope


async def _wait_for(received: Received, ids: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not ids <= received.arrived.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        received.changed.clear()
        try:
            await asyncio.wait_for(received.changed.wait(), min(left, 0.5))
        except TimeoutError:
            pass
    return True


def _out_of_order(spaces: Spaces, received: Received) -> int:
    """Events that arrived before an event sent earlier for the same Space."""
    wrong = 0
    for space_id, arrived in received.order.items():
        position = {event_id: n for n, event_id in enumerate(spaces.sent[space_id])}
        last = -1
        for event_id in arrived:
            if position[event_id] < last:
                wrong += 1
            last = max(last, position[event_id])
    return wrong


async def main(args) -> dict:
    received = Received()
    app = web.Application()
    app.router.add_post("/hook", received.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with BenchStack() as stack:
            service = await stack.start("webhooks")
            channel = grpc.aio.insecure_channel(service.address)
            token = mint_token(DEV_JWT_SECRET, "bench-gateway", roles=[GATEWAY_ROLE])
            await webhook_service_pb2_grpc.WebhookServiceStub(channel).RegisterWebhook(
                pb.RegisterWebhookRequest(url=f"http://{host}:{port}/hook"),
                metadata=(("authorization", f"Bearer {token}"),),
            )
            await channel.close()
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
            await producer.start()
            spaces = Spaces(args.spaces)
            pid = service.process.pid
            try:
                steady = await _steady(producer, spaces, received, args, pid)
                steady["stages_ms"] = await _stages(stack.database_url, spaces)
                backlog = await _backlog(producer, spaces, received, args, pid)
            finally:
                await producer.stop()
    finally:
        await runner.cleanup()
    return {
        **run_header(),
        "spaces": args.spaces,
        "steady": steady,
        "backlog": backlog,
        "duplicates": received.duplicates,
        "out_of_order": _out_of_order(spaces, received),
    }


async def _stages(database_url: str, spaces: Spaces) -> dict:
    """Where the time goes, from the service's own rows: event → enqueued (the log and the view's
    transaction) and enqueued → recorded as delivered (the worker and HTTP, and the record)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM enqueued_at - occurred_at) AS enqueue, "
            "extract(epoch FROM delivered_at - enqueued_at) AS deliver FROM webhooks.deliveries "
            "WHERE event_id = ANY($1::text[]) AND delivered_at IS NOT NULL",
            [i for ids in spaces.sent.values() for i in ids],
        )
    finally:
        await conn.close()
    found = {}
    for stage in ("enqueue", "deliver"):
        values = [float(r[stage]) for r in rows]
        found[stage] = {q: round(percentile(values, p) * 1000, 1) for q, p in (("p50", 0.5), ("p99", 0.99))}
    return found


async def _send(producer: AIOKafkaProducer, spaces: Spaces) -> tuple[str, asyncio.Future]:
    space_id, envelope = spaces.next()
    future = await producer.send(ROOM_EVENTS.name, envelope.SerializeToString(), key=space_id.encode())
    return envelope.event_id, future


async def _steady(producer, spaces: Spaces, received: Received, args, pid: int) -> dict:
    loop = asyncio.get_running_loop()
    total = int(args.rate * args.seconds)
    ids, futures = [], []
    cpu_before = cpu_seconds(pid)
    start = loop.time()
    for n in range(total):
        delay = start + n / args.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id, future = await _send(producer, spaces)
        ids.append(event_id)
        futures.append(future)
    await asyncio.gather(*futures)
    offered_for = loop.time() - start
    complete = await _wait_for(received, set(ids), 60)
    latencies = [received.arrived[i] - received.occurred[i] for i in ids if i in received.arrived]
    arrivals = sorted(received.arrived[i] for i in ids if i in received.arrived)
    return {
        "rate_offered_per_s": args.rate,
        "seconds": args.seconds,
        "published": total,
        "publish_seconds": round(offered_for, 2),
        "delivered": len(latencies),
        "all_delivered": complete,
        "delivered_per_s": round(len(arrivals) / (arrivals[-1] - arrivals[0]), 1) if len(arrivals) > 1 else 0,
        "latency_ms": {
            q: round(percentile(latencies, p) * 1000, 1)
            for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "webhooks_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
    }


async def _backlog(producer, spaces: Spaces, received: Received, args, pid: int) -> dict:
    ids, futures = [], []
    cpu_before = cpu_seconds(pid)
    started = time.time()
    for _ in range(args.backlog):
        event_id, future = await _send(producer, spaces)
        ids.append(event_id)
        futures.append(future)
    await asyncio.gather(*futures)
    written = time.time()
    complete = await _wait_for(received, set(ids), 300)
    last = max((received.arrived[i] for i in ids if i in received.arrived), default=written)
    delivered = sum(1 for i in ids if i in received.arrived)
    return {
        "events": args.backlog,
        "write_seconds": round(written - started, 2),
        "delivered": delivered,
        "all_delivered": complete,
        "drain_seconds": round(last - started, 2),
        "deliveries_per_s": round(delivered / (last - started), 1) if last > started else 0,
        "webhooks_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500, help="events per second, open loop")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--spaces", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=10_000)
    return parser.parse_args(argv)


def cli() -> None:
    print(json.dumps(run(main(parse_args()), "uvloop"), indent=2))


if __name__ == "__main__":
    cli()
