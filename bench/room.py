"""Room benchmark against the real stack: `python -m bench.room`.

1. JoinSpace under open-loop load: sustained commands/s, and p50/p99 from
   sending the command to the join being visible in a second process's
   projection (bench/visibility_probe.py), plus p50/p99 to the gRPC answer.
2. Projection rebuild from N events, beside raw aiokafka consumption of the
   same topic in the same run, and their ratio.

It starts its own broker (embedded, unless KAFKA_BOOTSTRAP_SERVERS is set), a
fresh database, a room service process and the probe process, and writes the
figures as JSON (bench/results/room-<date>.json) and as a Markdown block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

from bench.commands import create_live_spaces, open_loop_joins, percentile
from bench.rebuild import run as run_rebuild
from bench.stack import BenchStack, cpu_seconds, run_header
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET, PodiumSettings
from podium.room.v1 import room_service_pb2_grpc

RESULTS = Path(__file__).parent / "results"


async def commands_benchmark(args, stack: BenchStack) -> dict:
    room = await stack.start("room")
    probe_out = stack.work / "visible.txt"
    probe = subprocess.Popen(
        [sys.executable, "-m", "bench.visibility_probe", str(probe_out)],
        env={**os.environ, **stack.env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert (await asyncio.to_thread(probe.stdout.readline)).strip() == "ready"
        async with grpc.aio.insecure_channel(room.address) as channel:
            spaces = await create_live_spaces(
                room_service_pb2_grpc.RoomServiceStub(channel), DEV_JWT_SECRET, args.spaces
            )
        cpu_before = {"room": cpu_seconds(room.process.pid), "probe": cpu_seconds(probe.pid)}
        generator_before = time.process_time()
        load = await open_loop_joins(room.address, DEV_JWT_SECRET, args.rate, args.duration, spaces)
        generator_cpu = time.process_time() - generator_before
        await asyncio.sleep(2.0)  # let the last joins reach the probe
        cpu = {
            k: cpu_seconds(p) - cpu_before[k] for k, p in (("room", room.process.pid), ("probe", probe.pid))
        }
        cpu["load generator"] = generator_cpu
        probe.stdin.close()
        await asyncio.to_thread(probe.wait, 30)
        visible = dict(line.split() for line in probe_out.read_text().splitlines())
    finally:
        if probe.poll() is None:
            probe.kill()
    acked = [load.acked_at[u] - load.sent_at[u] for u in load.acked_at]
    seen = [float(visible[u]) - load.sent_at[u] for u in load.acked_at if u in visible]
    last_ack = max(load.acked_at.values(), default=0)
    first_send = min(load.sent_at.values(), default=0)
    return {
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "spaces": args.spaces,
        "planned": load.planned,
        "acknowledged": load.acknowledged,
        "errors": load.errors,
        "sustained_joins_per_s": round(load.acknowledged / (last_ack - first_send), 1)
        if load.acknowledged
        else 0,
        "ack_p50_ms": round(percentile(acked, 0.50) * 1000, 2),
        "ack_p99_ms": round(percentile(acked, 0.99) * 1000, 2),
        "visible_count": len(seen),
        "visible_p50_ms": round(percentile(seen, 0.50) * 1000, 2),
        "visible_p99_ms": round(percentile(seen, 0.99) * 1000, 2),
        "generator_max_schedule_lag_ms": round(load.max_lag * 1000, 2),
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
    }


async def main(args) -> dict:
    async with BenchStack() as stack:
        result = run_header()
        if not args.skip_commands:
            result["joins"] = await commands_benchmark(args, stack)
        if not args.skip_rebuild:
            settings = PodiumSettings(kafka_bootstrap_servers=stack.bootstrap)
            rebuild = await run_rebuild(settings, args.rebuild_events)
            result["rebuild"] = {
                "events": rebuild.events,
                "raw_events_per_s": round(rebuild.raw_rate),
                "projection_events_per_s": round(rebuild.projection_rate),
                "ratio": round(rebuild.ratio, 3),
            }
        return result


def markdown(result: dict) -> str:
    lines = [f"### {result['date']} · {result['machine']} · commit {result['commit']}", ""]
    if "joins" in result:
        j = result["joins"]
        lines += [
            f"- JoinSpace, open loop at {j['offered_rate']}/s for {j['duration_s']} s over {j['spaces']} live Spaces: "
            f"**{j['sustained_joins_per_s']} joins/s sustained**, {j['acknowledged']}/{j['planned']} acknowledged, errors {j['errors'] or 'none'}",
            f"- command → visible in a second process's projection: **p50 {j['visible_p50_ms']} ms, p99 {j['visible_p99_ms']} ms** "
            f"({j['visible_count']} joins seen); command → gRPC answer: p50 {j['ack_p50_ms']} ms, p99 {j['ack_p99_ms']} ms",
            f"- CPU during the load: room {j['cpu_seconds']['room']} s, probe {j['cpu_seconds']['probe']} s, "
            f"load generator {j['cpu_seconds']['load generator']} s; "
            f"generator fell behind its schedule by at most {j['generator_max_schedule_lag_ms']} ms",
        ]
    if "rebuild" in result:
        r = result["rebuild"]
        lines += [
            f"- rebuild of {r['events']:,} events: projection **{r['projection_events_per_s']:,} events/s**, "
            f"raw aiokafka {r['raw_events_per_s']:,} events/s, **ratio {r['ratio']:.0%}**",
        ]
    return "\n".join(lines) + "\n"


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000, help="JoinSpace commands per second offered")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load")
    parser.add_argument("--spaces", type=int, default=50, help="live Spaces the joins spread over")
    parser.add_argument("--rebuild-events", type=int, default=200_000)
    parser.add_argument("--skip-commands", action="store_true")
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(main(args), "uvloop")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"room-{result['date'][:19].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    cli()
