"""Media fan-out: `python -m bench.media_fanout` (options: --subscribers, --seconds, --warmup, ...).

Ten speakers publish 20 ms Opus-sized frames at 50 frames/s each, open loop
(each on its own schedule with a random phase, never waiting for the relay),
from one publisher process. N gateway subscribers, spread over several
subscriber processes, each hold one Subscribe stream. Everything runs on
loopback on this machine; clocks are the same wall clock, so
publish -> receive latency is `receive time - captured_at`.

Two runs over the same load:

1. **relay**: the real `media-relay` service (with the room service, the
   broker and PostgreSQL behind it): one message per subscriber per 20 ms tick
   bundling every speaker's frames, encoded once per tick.
2. **naive baseline** (`NaiveRelay` below): a minimal gRPC server that sends
   each frame as its own message to each subscriber (per-frame,
   per-subscriber streaming), with the same bounded drop-oldest queues and no
   admission checks at all.

Reported: frame deliveries/s, messages/s, p50/p99/p99.9 latency, frames lost
(dropped_total, and never-received), and the server's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import time
from array import array
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.stack import BenchStack, cpu_seconds, run_header
from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.settings import DEV_JWT_SECRET
from libs.devstack.broker import free_port
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_service_pb2_grpc
from podium.media.v1 import media_types_pb2 as mt
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_service_pb2_grpc

SPEAKERS = 10
FRAME_SECONDS = 0.02
OPUS_BYTES = 80  # a 32 kbit/s Opus voice frame is ~80 bytes


def md(user: str):
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user)}"),)


def gateway_md(gateway_id: str):
    """A listener gateway subscribes with its own gateway token."""
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, gateway_id, roles=[GATEWAY_ROLE])}"),)


def percentile(ordered, q: float) -> float:
    if not len(ordered):
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _event_loop():
    try:
        import uvloop

        return uvloop.run
    except ImportError:  # pragma: no cover
        return asyncio.run


# The publisher process


async def _publish(address, space_id, speakers, start_at, seconds, results) -> tuple[int, float]:
    channel = grpc.aio.insecure_channel(address)
    await channel.channel_ready()
    # Under load the process may start late: then the schedule starts now, not in the past.
    start_at = max(start_at, time.time() + 0.2)
    results.put(("start", start_at))
    late = [0.0]
    stub = media_service_pb2_grpc.MediaRelayServiceStub(channel)
    opus = bytes(random.getrandbits(8) for _ in range(OPUS_BYTES))
    count = int(seconds / FRAME_SECONDS)

    async def speaker(user: str, phase: float) -> int:
        call = stub.Publish(metadata=md(user))
        sent = 0
        for i in range(count):
            delay = start_at + phase + i * FRAME_SECONDS - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late[0] = max(late[0], -delay)
            ns = time.time_ns()
            frame = mt.AudioFrame(
                space_id=space_id,
                speaker_id=user,
                sequence=i,
                captured_at=Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000),
                audio_level_dbov=-20,
                opus=opus,
            )
            await call.write(pb.PublishRequest(frame=frame))
            sent += 1
        await call.done_writing()
        await call
        return sent

    phases = [random.random() * FRAME_SECONDS for _ in speakers]
    sent = await asyncio.gather(*(speaker(u, p) for u, p in zip(speakers, phases, strict=True)))
    await channel.close()
    return sum(sent), late[0], time.process_time()


def publisher_process(address, space_id, speakers, start_at, seconds, results):
    results.put(
        ("publisher", _event_loop()(_publish(address, space_id, speakers, start_at, seconds, results)))
    )


# Subscriber processes


async def _subscribe(address, space_id, count, first_index, measure_from, measure_until, stop_at):
    """Measures frames whose sequence is in [measure_from, measure_until); each stream ends once it
    has seen frame `stop_at - 1` of every speaker (or after two minutes)."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, count // 10))]
    latencies = array("d")
    totals = {"frames": 0, "messages": 0, "dropped": 0, "measured_frames": 0, "measured_messages": 0}

    async def one(i: int):
        stub = media_service_pb2_grpc.MediaRelayServiceStub(channels[i % len(channels)])
        call = stub.Subscribe(
            pb.SubscribeRequest(space_id=space_id, gateway_id=f"gw-{first_index + i}"),
            metadata=gateway_md(f"gw-{first_index + i}"),
        )
        dropped = 0
        finished: set[str] = set()
        try:
            async for message in call:
                now = time.time()
                totals["messages"] += 1
                dropped = message.dropped_total
                measured = 0
                for f in message.frames:
                    seq = f.sequence
                    if seq >= stop_at - 1:
                        finished.add(f.speaker_id)
                    if measure_from <= seq < measure_until:
                        latencies.append(now - (f.captured_at.seconds + f.captured_at.nanos * 1e-9))
                        measured += 1
                totals["frames"] += len(message.frames)
                if measured:
                    totals["measured_frames"] += measured
                    totals["measured_messages"] += 1
                if len(finished) == SPEAKERS or now > deadline:
                    break  # every speaker's last frame is in
        except grpc.aio.AioRpcError:
            pass
        finally:
            call.cancel()
            totals["dropped"] += dropped

    deadline = time.time() + 120
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    _, pending = await asyncio.wait(tasks, timeout=120)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    totals["cpu_seconds"] = time.process_time()
    return totals, latencies.tobytes()


def subscriber_process(address, space_id, count, first_index, measure_from, measure_until, stop_at, results):
    totals, latencies = _event_loop()(
        _subscribe(address, space_id, count, first_index, measure_from, measure_until, stop_at)
    )
    results.put(("subscribers", (totals, latencies)))


# The naive baseline server


class NaiveRelay:
    """Per-frame, per-subscriber streaming: each frame is its own message to each subscriber."""

    def __init__(self, queue_frames: int):
        self.queue_frames = queue_frames
        self.subscribers: list[tuple[deque, asyncio.Event, list[int]]] = []

    async def Publish(self, request_iterator, context):
        async for request in request_iterator:
            f = request.frame
            ns = time.time_ns()
            message = pb.SubscribeResponse(
                frames=[
                    mt.RelayedFrame(
                        speaker_id=f.speaker_id,
                        sequence=f.sequence,
                        captured_at=f.captured_at,
                        audio_level_dbov=f.audio_level_dbov,
                        opus=f.opus,
                        relayed_at=Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000),
                    )
                ]
            )
            for queue, event, dropped in self.subscribers:
                if len(queue) >= self.queue_frames:
                    queue.popleft()
                    dropped[0] += 1
                queue.append(message)
                event.set()
        return pb.PublishResponse()

    async def Subscribe(self, request, context):
        entry = (deque(), asyncio.Event(), [0])
        self.subscribers.append(entry)
        queue, event, dropped = entry
        try:
            while True:
                if not queue:
                    event.clear()
                    await event.wait()
                    continue
                message = queue.popleft()
                message.dropped_total = dropped[0]
                yield message
        finally:
            self.subscribers.remove(entry)


async def _naive_server(port: int, queue_frames: int) -> None:
    server = grpc.aio.server()
    media_service_pb2_grpc.add_MediaRelayServiceServicer_to_server(NaiveRelay(queue_frames), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def naive_server_process(port: int, queue_frames: int) -> None:
    _event_loop()(_naive_server(port, queue_frames))


# One run


def run_load(address: str, server_pid: int, space_id: str, speakers: list[str], args) -> dict:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 5.0  # subscribers connect first
    frames = int((args.warmup + args.seconds) / FRAME_SECONDS)
    measure_from = int(args.warmup / FRAME_SECONDS)  # sequence numbers
    measure_until = frames
    stop_at = frames
    per = [args.subscribers // args.subscriber_processes] * args.subscriber_processes
    per[0] += args.subscribers - sum(per)
    procs = []
    first = 0
    for count in per:
        procs.append(
            ctx.Process(
                target=subscriber_process,
                args=(address, space_id, count, first, measure_from, measure_until, stop_at, results),
            )
        )
        first += count
    procs.append(
        ctx.Process(
            target=publisher_process,
            args=(address, space_id, speakers, start_at, args.warmup + args.seconds, results),
        )
    )
    for p in procs:
        p.start()
    kind, started = results.get(timeout=120)
    assert kind == "start"
    time.sleep(max(0.0, started + args.warmup - time.time()))
    cpu_before = cpu_seconds(server_pid)
    time.sleep(max(0.0, started + args.warmup + args.seconds - time.time()))
    cpu_during = cpu_seconds(server_pid) - cpu_before
    gathered = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
    sent, late, publisher_cpu = next(v for k, v in gathered if k == "publisher")
    subscriber_cpu = sum(v[0]["cpu_seconds"] for k, v in gathered if k == "subscribers")
    latencies = array("d")
    totals = {"frames": 0, "messages": 0, "dropped": 0, "measured_frames": 0, "measured_messages": 0}
    for kind, value in gathered:
        if kind == "subscribers":
            t, raw = value
            for k in totals:
                totals[k] += t[k]
            chunk = array("d")
            chunk.frombytes(raw)
            latencies.extend(chunk)
    ordered = sorted(latencies)
    expected = SPEAKERS * int(args.seconds / FRAME_SECONDS) * args.subscribers
    return {
        "subscribers": args.subscribers,
        "frames_published": sent,
        "publisher_max_behind_schedule_ms": round(late * 1000, 1),
        "deliveries_per_s": round(totals["measured_frames"] / args.seconds),
        "messages_per_s": round(totals["measured_messages"] / args.seconds),
        "expected_deliveries_in_window": expected,
        "delivered_in_window": totals["measured_frames"],
        "lost_in_window": max(0, expected - totals["measured_frames"]),
        "dropped_total_reported": totals["dropped"],
        "latency_ms": {
            "p50": round(percentile(ordered, 0.50) * 1000, 2),
            "p99": round(percentile(ordered, 0.99) * 1000, 2),
            "p99.9": round(percentile(ordered, 0.999) * 1000, 2),
            "max": round((ordered[-1] if ordered else float("nan")) * 1000, 2),
        },
        "server_cpu_seconds": round(cpu_during, 2),
        "server_cpu_share_of_one_core": round(cpu_during / args.seconds, 2),
        "publisher_process_cpu_seconds_whole_run": round(publisher_cpu, 2),
        "subscriber_processes_cpu_seconds_whole_run": round(subscriber_cpu, 2),
        "load_average_1m_after": os.getloadavg()[0],
    }


async def prepare_space(room_address: str, relay_address: str) -> tuple[str, list[str]]:
    rooms = room_service_pb2_grpc.RoomServiceStub(grpc.aio.insecure_channel(room_address))
    host = "bench-host"
    space_id = (
        await rooms.CreateSpace(rpb.CreateSpaceRequest(title="fan-out"), metadata=md(host))
    ).space.space_id
    await rooms.StartSpace(rpb.StartSpaceRequest(space_id=space_id), metadata=md(host))
    speakers = [host]
    for i in range(SPEAKERS - 1):
        user = f"bench-spk-{i}"
        await rooms.JoinSpace(rpb.JoinSpaceRequest(space_id=space_id), metadata=md(user))
        await rooms.InviteToSpeak(
            rpb.InviteToSpeakRequest(space_id=space_id, user_id=user), metadata=md(host)
        )
        speakers.append(user)
    # Wait until the relay's view admits the last speaker.
    stub = media_service_pb2_grpc.MediaRelayServiceStub(grpc.aio.insecure_channel(relay_address))
    deadline = time.time() + 30
    while True:
        call = stub.Publish(metadata=md(speakers[-1]))
        try:
            await call.write(
                pb.PublishRequest(
                    frame=mt.AudioFrame(
                        space_id=space_id, speaker_id=speakers[-1], opus=b"\x00", audio_level_dbov=-127
                    )
                )
            )
            await call.done_writing()
            await call
            return space_id, speakers
        except grpc.aio.AioRpcError:
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def main(args) -> dict:
    report: dict = {**run_header(), "args": vars(args)}
    async with BenchStack() as stack:
        room = await stack.start("room")
        relay = await stack.start(
            "media-relay",
            env={
                "PODIUM_MEDIA_RELAY_SUBSCRIBER_QUEUE_TICKS": str(args.queue_ticks),
                "PODIUM_MEDIA_RELAY_TICK_MS": str(args.tick_ms),
            },
        )
        space_id, speakers = await prepare_space(room.address, relay.address)
        report["relay"] = await asyncio.to_thread(
            run_load, relay.address, relay.process.pid, space_id, speakers, args
        )
        print("relay:", json.dumps(report["relay"]), flush=True)
    if not args.skip_baseline:
        port = free_port()
        server = mp.get_context("spawn").Process(
            target=naive_server_process, args=(port, args.queue_ticks * SPEAKERS)
        )
        server.start()
        await asyncio.sleep(2.0)
        try:
            report["naive"] = await asyncio.to_thread(
                run_load, f"127.0.0.1:{port}", server.pid, "naive", speakers, args
            )
        finally:
            server.kill()
            server.join()
        print("naive:", json.dumps(report["naive"]), flush=True)
        relay_rate, naive_rate = report["relay"]["deliveries_per_s"], report["naive"]["deliveries_per_s"]
        report["ratio_deliveries"] = round(relay_rate / naive_rate, 2) if naive_rate else None
        relay_cpu = report["relay"]["server_cpu_seconds"] / max(1, report["relay"]["delivered_in_window"])
        naive_cpu = report["naive"]["server_cpu_seconds"] / max(1, report["naive"]["delivered_in_window"])
        report["ratio_cpu_per_delivery"] = round(naive_cpu / relay_cpu, 2) if relay_cpu else None
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S%z")
    (out / f"media-fanout-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("relay", "naive")}, indent=2))
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100, help="gateway subscribers (N)")
    parser.add_argument("--subscriber-processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--queue-ticks", type=int, default=50, help="subscriber queue (ticks; x10 frames for naive)"
    )
    parser.add_argument("--tick-ms", type=float, default=20.0, help="the relay's fan-out tick")
    parser.add_argument("--skip-baseline", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    os.environ.setdefault("PODIUM_LOG_LEVEL", "WARNING")
    asyncio.run(main(parse_args()))
