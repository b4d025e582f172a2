"""Webhook delivery: event → POST latency at a steady rate, and how fast a backlog drains.

    python -m bench.webhooks [--rate 500] [--seconds 20] [--spaces 100] [--backlog 10000]

Against the real webhooks service (its own process, on a fresh broker and
database), with a gateway's webhook for every event type pointing at a receiver
that answers 204 at once:

1. **steady**: room events (joins and leaves over `--spaces` live Spaces) are
   written to `podium.room.events.v1` open loop at `--rate` per second for
   `--seconds`, each stamped `occurred_at` as it is sent, as the room's relay
   would. Latency is from that stamp to the POST arriving at the receiver
   (an aiohttp server in a process of its own): the log, the delivery-queue
   view's transaction, the worker, HTTP.
2. **backlog**: `--backlog` events are written at once, then the time until the
   last arrives gives the deliveries per second the service sustains.

Every event must arrive once (counted by `Idempotency-Key`) and, per Space,
in order; both are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import asyncpg
import grpc
import uvloop
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.commands import percentile
from bench.stack import BenchStack, cpu_seconds, run_header
from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from libs.devstack.broker import free_port
from libs.events.envelope import Causation, wrap
from libs.events.topics import ROOM_EVENTS
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from podium.webhooks.v1 import webhook_service_pb2 as pb
from podium.webhooks.v1 import webhook_service_pb2_grpc

CAUSE = Causation("bench", "bench", "bench")


class Receiver:
    """The endpoint: an aiohttp server in a process of its own (as a gateway's would be), which
    answers 204 at once and notes, per event, when it arrived and when it occurred."""

    def __init__(self) -> None:
        self.arrived: dict[str, tuple[str, float, float]] = {}  # id -> (Space, occurred, arrived)
        self.duplicates = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        event = json.loads(body)
        if event["id"] in self.arrived:
            self.duplicates += 1
        else:
            occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
            self.arrived[event["id"]] = (event["space_id"], occurred, now)
        return web.Response(status=204)

    async def count(self, _: web.Request) -> web.Response:
        return web.json_response({"arrived": len(self.arrived)})

    async def dump(self, _: web.Request) -> web.Response:
        return web.json_response({"arrived": self.arrived, "duplicates": self.duplicates})

    def serve(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        app.router.add_get("/count", self.count)
        app.router.add_get("/dump", self.dump)
        web.run_app(
            app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
        )


@dataclass
class Received:
    """What the receiver saw, fetched from it: per event id, its Space, when it occurred and arrived."""

    arrived: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    duplicates: int = 0


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


async def _wait_for(session: aiohttp.ClientSession, base: str, count: int, timeout: float) -> bool:
    """Until the receiver has `count` distinct events (all sent so far), or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{base}/count") as answer:
            if (await answer.json())["arrived"] >= count:
                return True
        await asyncio.sleep(0.1)
    return False


async def _received(session: aiohttp.ClientSession, base: str) -> Received:
    async with session.get(f"{base}/dump") as answer:
        found = await answer.json()
    return Received({k: tuple(v) for k, v in found["arrived"].items()}, found["duplicates"])


def _out_of_order(spaces: Spaces, received: Received) -> int:
    """Events that arrived before an event sent earlier for the same Space."""
    wrong = 0
    for sent in spaces.sent.values():
        position = {event_id: n for n, event_id in enumerate(sent)}
        arrived = sorted((received.arrived[i][2], i) for i in sent if i in received.arrived)
        last = -1
        for _, event_id in arrived:
            if position[event_id] < last:
                wrong += 1
            last = max(last, position[event_id])
    return wrong


async def main(args) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--serve", str(port)])
    try:
        async with aiohttp.ClientSession() as session, BenchStack() as stack:
            await _until_listening(session, base)
            service = await stack.start("webhooks")
            channel = grpc.aio.insecure_channel(service.address)
            token = mint_token(DEV_JWT_SECRET, "bench-gateway", roles=[GATEWAY_ROLE])
            await webhook_service_pb2_grpc.WebhookServiceStub(channel).RegisterWebhook(
                pb.RegisterWebhookRequest(url=f"{base}/hook"),
                metadata=(("authorization", f"Bearer {token}"),),
            )
            await channel.close()
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
            await producer.start()
            spaces = Spaces(args.spaces)
            pid = service.process.pid
            try:
                steady = await _steady(producer, spaces, session, base, args, pid)
                steady["stages_ms"] = await _stages(stack.database_url, spaces)
                backlog = await _backlog(producer, spaces, session, base, args, pid)
            finally:
                await producer.stop()
            received = await _received(session, base)
    finally:
        receiver.terminate()
        receiver.wait(10)
    steady.update(_latencies(received, steady.pop("ids")))
    backlog.update(_drain(received, backlog.pop("ids"), backlog.pop("started")))
    return {
        **run_header(),
        "spaces": args.spaces,
        "steady": steady,
        "backlog": backlog,
        "duplicates": received.duplicates,
        "out_of_order": _out_of_order(spaces, received),
    }


async def _until_listening(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(100):
        try:
            async with session.get(f"{base}/count"):
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the receiver did not start")


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


async def _steady(producer, spaces: Spaces, session, base: str, args, pid: int) -> dict:
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
    complete = await _wait_for(session, base, spaces.n, 120)
    return {
        "rate_offered_per_s": args.rate,
        "seconds": args.seconds,
        "published": total,
        "publish_seconds": round(offered_for, 2),
        "all_delivered": complete,
        "webhooks_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
        "ids": ids,
    }


def _latencies(received: Received, ids: list[str]) -> dict:
    found = [received.arrived[i] for i in ids if i in received.arrived]
    latencies = [arrived - occurred for _, occurred, arrived in found]
    arrivals = sorted(arrived for _, _, arrived in found)
    return {
        "delivered": len(found),
        "delivered_per_s": round(len(arrivals) / (arrivals[-1] - arrivals[0]), 1) if len(arrivals) > 1 else 0,
        "latency_ms": {
            q: round(percentile(latencies, p) * 1000, 1)
            for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
    }


async def _backlog(producer, spaces: Spaces, session, base: str, args, pid: int) -> dict:
    ids, futures = [], []
    cpu_before = cpu_seconds(pid)
    started = time.time()
    for _ in range(args.backlog):
        event_id, future = await _send(producer, spaces)
        ids.append(event_id)
        futures.append(future)
    await asyncio.gather(*futures)
    written = time.time()
    complete = await _wait_for(session, base, spaces.n, 300)
    return {
        "events": args.backlog,
        "write_seconds": round(written - started, 2),
        "all_delivered": complete,
        "webhooks_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
        "ids": ids,
        "started": started,
    }


def _drain(received: Received, ids: list[str], started: float) -> dict:
    arrivals = [received.arrived[i][2] for i in ids if i in received.arrived]
    last = max(arrivals, default=started)
    return {
        "delivered": len(arrivals),
        "drain_seconds": round(last - started, 2),
        "deliveries_per_s": round(len(arrivals) / (last - started), 1) if last > started else 0,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500, help="events per second, open loop")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--spaces", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the receiver's process
    return parser.parse_args(argv)


def cli() -> None:
    args = parse_args()
    if args.serve:
        Receiver().serve(args.serve)
        return
    print(json.dumps(run(main(args), "uvloop"), indent=2))


if __name__ == "__main__":
    cli()
