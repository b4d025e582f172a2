"""Replay: finalizing speed, and StreamReplay start and seek latency. `python -m bench.replay`.

1. Finalizing. A recorded Space with `--speakers` speakers talking at once for
   `--minutes` minutes (real Opus, a tone each, 20 ms frames, ~1 s chunks on the
   recording topic). The clock starts at EndSpace and stops when GetReplay says
   READY, so it includes noticing the end, waiting until the recording spool
   has stored every chunk (it takes them from the broker as they are written,
   before the clock starts), reading them from PostgreSQL, decoding every
   speaker, mixing, encoding, storing and writing the event (the finalize
   delay is set to 0). Reported as seconds of recording per
   second of wall time, and as seconds of decoded speaker audio per second.
   The same mix is also timed in-process (no broker, no service) for comparison.
2. StreamReplay. `--streams` calls at speed 1 from the start (time to the first
   frame), and as many with a random `start_at` (seek), started open loop at
   `--stream-rate` calls a second whatever the answers; latency counts from
   when each call was due; p50/p95. Each call also records a ReplayListened
   (a PostgreSQL append).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from aiokafka import AIOKafkaProducer

from bench.commands import percentile
from bench.stack import BenchStack, cpu_seconds, run_header
from libs.auth.tokens import mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from libs.events.topics import MEDIA_RECORDING, create_topics
from podium.replay.v1 import replay_service_pb2 as pb
from podium.replay.v1 import replay_service_pb2_grpc
from podium.replay.v1 import replay_types_pb2 as rt
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_service_pb2_grpc
from services.replay.infrastructure.audio import SpeakerFrame, mix_to_ogg
from tests.support.opus_tones import recording_chunks, tone_packets

TONES = (220, 330, 440, 550, 660, 770, 880, 990)


def md(user: str):
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user)}"),)


def speaker_chunks(space_id: str, speakers: int, seconds: int, start: datetime):
    for n in range(speakers):
        one_second = tone_packets(TONES[n % len(TONES)], 1.0)
        yield from recording_chunks(space_id, f"speaker-{n}", one_second * seconds, start)


def in_process_mix(speakers: int, seconds: int) -> float:
    start = datetime.now(UTC)
    frames = [
        SpeakerFrame(f.speaker_id, f.captured_at.ToDatetime(tzinfo=UTC), f.sequence, f.opus)
        for chunk in speaker_chunks("bench", speakers, seconds, start)
        for f in chunk.frames
    ]
    with tempfile.TemporaryDirectory() as work:
        began = time.perf_counter()
        mix_to_ogg(frames, Path(work) / "m.ogg", Path(work) / "m.frames")
        return time.perf_counter() - began


async def main(args) -> dict:
    seconds = int(args.minutes * 60)
    result = {**run_header(), "speakers": args.speakers, "recording_seconds": seconds}
    mix_wall = in_process_mix(args.speakers, seconds)
    result["in_process_mix"] = {
        "wall_s": round(mix_wall, 2),
        "recording_s_per_s": round(seconds / mix_wall, 1),
        "speaker_audio_s_per_s": round(seconds * args.speakers / mix_wall, 1),
    }
    async with BenchStack() as stack:
        room = await stack.start("room")
        replay = await stack.start(
            "replay",
            env={
                "PODIUM_REPLAY_BLOB_DIR": str(stack.work / "replays"),
                "PODIUM_REPLAY_FINALIZE_DELAY_SECONDS": "0",
                "PODIUM_REPLAY_FINALIZE_POLL_SECONDS": "0.05",
            },
        )
        rooms = room_service_pb2_grpc.RoomServiceStub(grpc.aio.insecure_channel(room.address))
        replays = replay_service_pb2_grpc.ReplayServiceStub(grpc.aio.insecure_channel(replay.address))
        space_id = (
            await rooms.CreateSpace(
                rpb.CreateSpaceRequest(title="bench", recording_enabled=True), metadata=md("host")
            )
        ).space.space_id
        await rooms.StartSpace(rpb.StartSpaceRequest(space_id=space_id), metadata=md("host"))
        await create_topics(stack.bootstrap, (MEDIA_RECORDING,), 6, 1)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        sends = [
            await producer.send(MEDIA_RECORDING.name, key=space_id.encode(), value=c.SerializeToString())
            for c in speaker_chunks(space_id, args.speakers, seconds, datetime.now(UTC))
        ]
        await asyncio.gather(*sends)
        await producer.stop()

        cpu_before = cpu_seconds(replay.process.pid)
        began = time.perf_counter()
        await rooms.EndSpace(rpb.EndSpaceRequest(space_id=space_id), metadata=md("host"))
        while True:
            try:
                got = (
                    await replays.GetReplay(pb.GetReplayRequest(space_id=space_id), metadata=md("b"))
                ).replay
                if got.state == rt.REPLAY_STATE_READY:
                    break
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - began
        result["service_finalize"] = {
            "wall_s": round(wall, 2),
            "recording_s_per_s": round(seconds / wall, 1),
            "speaker_audio_s_per_s": round(seconds * args.speakers / wall, 1),
            "replay_cpu_s": round(cpu_seconds(replay.process.pid) - cpu_before, 2),
            "ogg_bytes": got.size_bytes,
            "duration_s": got.duration.ToTimedelta().total_seconds(),
        }

        async def first_frame(start_at: float, scheduled: float) -> float:
            """From the moment the call was due (not when it got to run) to its first frame."""
            request = pb.StreamReplayRequest(space_id=space_id, speed=1.0)
            request.start_at.FromNanoseconds(int(start_at * 1e9))
            call = replays.StreamReplay(request, metadata=md("listener"))
            await call.read()
            elapsed = time.perf_counter() - scheduled
            call.cancel()
            return elapsed

        async def open_loop(offsets: list[float]) -> list[float]:
            """One call every 1/rate s on a fixed schedule, never waiting for earlier answers."""
            began, calls = time.perf_counter(), []
            for i, start_at in enumerate(offsets):
                due = began + i / args.stream_rate
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                calls.append(asyncio.create_task(first_frame(start_at, due)))
            return list(await asyncio.gather(*calls))

        await first_frame(0, time.perf_counter())  # warm the channel
        starts = await open_loop([0.0] * args.streams)
        seeks = await open_loop([random.uniform(0, seconds - 1) for _ in range(args.streams)])
        for name, values in (("stream_start", starts), ("seek", seeks)):
            result[name] = {
                "calls": len(values),
                "p50_ms": round(percentile(values, 0.5) * 1000, 1),
                "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            }
    return result


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100, help="StreamReplay calls for each latency")
    parser.add_argument(
        "--stream-rate", type=float, default=20, help="StreamReplay calls started per second (open loop)"
    )
    result = run(main(parser.parse_args()), "uvloop")
    out = Path("bench/results") / f"replay-{result['date'].replace(':', '')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
