"""One hot Space against joins spread over many: `python -m bench.hot_space` (or `python -m bench --only hot-space`).

A celebrity Space fills with listeners faster than any other. Its joins are
decided against the Space's one stream and recorded on its listener shards as
it grows them, so this measures what one hot Space costs against joins spread
over many, in one run on one broker and database:

  capacity   one Space, one room process, offered `--capacity-rate`: the joins/s it sustains
  spread-capacity   the same over `--spaces` Spaces: what one room process sustains when no Space is hot
  hot-80     one Space, one room process, at 80 % of that capacity
  spread-1   JoinSpace open loop at `--rate` over `--spaces` other live Spaces, one room process
             (by default 60 % of spread-capacity: what joins cost is compared at a load the host
             carries; past its capacity a phase measures calls queueing and given up instead)
  hot-1      the same rate into one other Space, one room process
  spread-2   the spread phase, round robin over two room processes, each Space's joins on one of
             them (call i to room i mod 2 and Space i mod 50): no Space has two writers
  spread-2-mixed   the same over other Spaces, each Space's joins alternating over the two rooms,
             as behind a balancer that knows nothing of Spaces: every Space has two writers
  hot-2      the same rate into one Space, round robin over two room processes
  (with --latency-curve R1,R2,..., only one-Space phases at those rates: latency against load)
  (the room processes grow a hot Space's listener shards past --shard-joins-per-second, the room's
  own default unless given; 0 keeps every join on the Space's one stream, ADR 0012)
  eviction   one Space of `--evict-listeners` listeners under a join storm at hot-80's rate (a
             bound measured while the room keeps up; over its capacity, it measures a queue
             growing; `--eviction-rate` to choose, `--rate` with `--eviction-only`): moderation
             bans `--bans` of them at `--ban-rate`/s during the storm, then, once it is over, the
             host makes it invite-only and the room evicts everyone else, the storm's joiners too
             (bench/eviction.py): p50/p99/max to the ParticipantLeft

Hot against spread is compared at the same number of room processes: a second replica costs
per join even when no Space is hot (its idle consumers, smaller group commits, folding the other's
events), which is not what one Space's serializing costs. The target is hot-2 against spread-2, the
stricter of the two-room baselines (no Space there has two writers); hot-2 against spread-2-mixed
(every Space has two) and against spread-1 are reported too.

For each phase: joins acknowledged per room CPU-second, joins/s sustained, p50/p99 from the call
to the join being visible in a second process's projection (bench/visibility_probe.py), client
errors by gRPC code, and appends that lost their stream to the other replica
(`podium_command_conflicts_total`, read from each room's /metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench import eviction
from bench.commands import create_live_spaces, open_loop_joins, percentile
from bench.profiling import Profiler
from bench.stack import BenchStack, cpu_seconds, machine_cpu_seconds, run_header
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from libs.devstack.broker import free_port
from libs.devstack.supervisor import ServiceProcess
from podium.room.v1 import room_service_pb2_grpc
from services.room.settings import RoomSettings

RESULTS = Path(__file__).parent / "results"
RATE_SHARE = 0.6  # of the spread capacity, the compared phases' rate unless --rate is given


@dataclass
class Room:
    process: ServiceProcess
    metrics_port: int

    def conflicts(self) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text.decode())
            if family.name == "podium_command_conflicts"
            for sample in family.samples
            if sample.name == "podium_command_conflicts_total"
        )


class Probe:
    """The second process whose projection says when each join became visible."""

    def __init__(self, stack: BenchStack):
        self.out = stack.work / "visible.txt"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.visibility_probe", str(self.out)],
            env={**os.environ, **stack.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ready(self) -> None:
        line = await asyncio.to_thread(self.process.stdout.readline)
        assert line.strip() == "ready", line

    async def finish(self) -> dict[str, float]:
        self.process.stdin.close()
        await asyncio.to_thread(self.process.wait, 60)
        return {user: float(at) for user, at in (line.split() for line in self.out.read_text().splitlines())}

    async def judge(self, phases: list[dict]) -> None:
        """Each phase's latency figures, once the last joins have reached the probe."""
        await asyncio.sleep(2.0)
        visible = await self.finish()
        for p in phases:
            visibility(p, visible)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


async def start_room(stack: BenchStack, shard_joins_per_second: float = 0, lanes: int = 1) -> Room:
    port = free_port()
    env = {
        "PODIUM_METRICS_PORT": str(port),
        "PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND": f"{shard_joins_per_second:g}",
        "PODIUM_ROOM_LISTENER_SHARD_LANES": str(lanes),
    }
    process = await stack.start("room", env)
    return Room(process, port)


async def live_spaces(room: Room, count: int) -> list[str]:
    async with grpc.aio.insecure_channel(room.process.address) as channel:
        return await create_live_spaces(room_service_pb2_grpc.RoomServiceStub(channel), DEV_JWT_SECRET, count)


#: The join phases, in the order they run (`joins`): what `--profile` may name.
JOIN_PHASES = (
    "capacity",
    "spread-capacity",
    "hot-80",
    "spread-1",
    "hot-1",
    "spread-2",
    "spread-2-mixed",
    "hot-2",
)


async def _phase(
    name: str,
    rooms: list[Room],
    spaces: list[str],
    rate: float,
    duration: float,
    *,
    alternate: bool = False,
    profile_dir: Path | None = None,
) -> dict:
    """One open-loop phase; with `profile_dir`, each room process under py-spy for its length."""
    profilers = [
        Profiler(r.process.process.pid, profile_dir / f"{name}-room{i}.txt", label=f"{name}, room {i}")
        for i, r in enumerate(rooms)
    ] if profile_dir else []  # fmt: skip
    for profiler in profilers:
        profiler.start()
    cpu_before = [cpu_seconds(r.process.process.pid) for r in rooms]
    machine_before = psutil.cpu_times()
    conflicts_before = [await asyncio.to_thread(r.conflicts) for r in rooms]
    load = await open_loop_joins(
        [r.process.address for r in rooms],
        DEV_JWT_SECRET,
        rate,
        duration,
        spaces,
        user_prefix=f"{name}-",
        alternate=alternate,
    )
    cpu = sum(
        cpu_seconds(r.process.process.pid) - before for r, before in zip(rooms, cpu_before, strict=True)
    )
    for profiler in profilers:
        profiler.stop()
    machine = machine_busy(machine_before, psutil.cpu_times())
    conflicts = sum(
        [
            await asyncio.to_thread(r.conflicts) - before
            for r, before in zip(rooms, conflicts_before, strict=True)
        ]
    )
    last_ack = max(load.acked_at.values(), default=0.0)
    first_send = min(load.sent_at.values(), default=0.0)
    return {
        "name": name,
        "rooms": len(rooms),
        "spaces": len(spaces),
        "offered_per_s": rate,
        "duration_s": duration,
        "planned": load.planned,
        "acknowledged": load.acknowledged,
        "errors": load.errors,
        "sustained_per_s": round(load.acknowledged / (last_ack - first_send), 1)
        if load.acknowledged
        else 0.0,
        "room_cpu_s": round(cpu, 2),
        "joins_per_room_cpu_s": round(load.acknowledged / cpu, 1) if cpu > 0 else None,
        "conflicts": int(conflicts),
        "conflicts_per_join": round(conflicts / max(load.acknowledged, 1), 4),
        "aborted_share": round(load.errors.get("ABORTED", 0) / max(load.planned, 1), 4),
        "generator_max_lag_ms": round(load.max_lag * 1000, 1),
        **({"profiles": [profiler.summary() for profiler in profilers]} if profilers else {}),
        **machine,
        "_load": load,
    }


def machine_busy(before, after) -> dict:
    """The whole machine's share of CPU time busy, and stolen by the host, between two readings: the
    room shares the cores with the database, the broker, the load generator and the probe, so a
    latency near a saturated machine says as much about the machine as about the room."""
    total, busy, steal = machine_cpu_seconds(before, after)
    return {"machine_busy_share": round(busy / total, 3), "steal_share": round(steal / total, 3)}


def visibility(result: dict, visible: dict[str, float]) -> None:
    load = result.pop("_load")
    seen = [visible[u] - load.sent_at[u] for u in load.acked_at if u in visible]
    acked = [load.acked_at[u] - load.sent_at[u] for u in load.acked_at]
    published = [visible[u] - load.acked_at[u] for u in load.acked_at if u in visible]
    result |= {
        "visible": len(seen),
        "visible_p50_ms": round(percentile(seen, 0.50) * 1000, 1),
        "visible_p99_ms": round(percentile(seen, 0.99) * 1000, 1),
        "ack_p50_ms": round(percentile(acked, 0.50) * 1000, 1),
        "ack_p99_ms": round(percentile(acked, 0.99) * 1000, 1),
        # from the answer to the probe's view: the outbox relay, the broker and a consumer
        "ack_to_visible_p50_ms": round(percentile(published, 0.50) * 1000, 1),
        "ack_to_visible_p99_ms": round(percentile(published, 0.99) * 1000, 1),
        "room_busy_share": round(result["room_cpu_s"] / result["duration_s"] / result["rooms"], 2),
    }


async def main(args) -> dict:
    result = run_header() | {"shard_lanes": args.lanes}
    async with BenchStack() as stack:
        first = await start_room(stack, args.shard_joins_per_second, args.lanes)
        if args.latency_curve:
            return result | await latency_curve(stack, first, args)
        storm_rate = args.eviction_rate or args.rate
        if not args.eviction_only:
            result |= await joins(stack, first, args)
            if not args.eviction_rate:  # what the room keeps up with here, as hot-80 does
                storm_rate = next(p["offered_per_s"] for p in result["phases"] if p["name"] == "hot-80")
        moderation = await stack.start("moderation")
        result["eviction"] = await eviction.measure(
            first.process.address,
            first.metrics_port,
            first.process.process.pid,
            moderation.address,
            stack.bootstrap,
            listeners=args.evict_listeners,
            storm_rate=storm_rate,
            bans=args.bans,
            ban_rate=args.ban_rate,
        )
    return result


async def joins(stack: BenchStack, first: Room, args) -> dict:
    """The join phases, on one and two room processes, and what the probe saw of them."""
    profiled = set(args.profile)

    def phase(name: str, *rest, **options):  # profiled when asked (py-spy costs CPU: not compared)
        if name not in JOIN_PHASES:  # the list --profile is checked against must name every phase
            raise ValueError(f"join phase {name!r} is missing from JOIN_PHASES")
        where = stack.work / "profiles" if name in profiled else None
        if where is not None:
            where.mkdir(exist_ok=True)
        return _phase(name, *rest, profile_dir=where, **options)

    probe = Probe(stack)
    try:
        await probe.ready()
        # The capacity phases fill Spaces of their own: the compared phases start on fresh ones.
        measured = await live_spaces(first, args.spaces)
        capacity = await phase("capacity", [first], measured[:1], args.capacity_rate, args.duration)
        spread_capacity = await phase("spread-capacity", [first], measured, args.capacity_rate, args.duration)
        at_80 = round(0.8 * capacity["sustained_per_s"])
        phases = [
            capacity,
            spread_capacity,
            await phase("hot-80", [first], measured[:1], at_80, args.duration),
        ]
        rate = args.rate or round(RATE_SHARE * spread_capacity["sustained_per_s"])
        spread = await live_spaces(first, args.spaces)
        hot = spread[:1]
        phases.append(await phase("spread-1", [first], spread, rate, args.duration))
        phases.append(await phase("hot-1", [first], hot, rate, args.duration))
        second = await start_room(stack, args.shard_joins_per_second, args.lanes)
        phases.append(await phase("spread-2", [first, second], spread, rate, args.duration))
        mixed = await live_spaces(first, args.spaces)
        phases.append(
            await phase("spread-2-mixed", [first, second], mixed, rate, args.duration, alternate=True)
        )
        phases.append(await phase("hot-2", [first, second], hot, rate, args.duration))
        await second.process.stop()
        await probe.judge(phases)
    finally:
        probe.kill()
    by = {p["name"]: p for p in phases}
    return {
        "phases": phases,
        "rate_per_s": rate,
        "hot_vs_spread_per_cpu": round(
            by["hot-1"]["joins_per_room_cpu_s"] / by["spread-1"]["joins_per_room_cpu_s"], 3
        ),
        "two_rooms_hot_vs_spread_per_cpu": round(
            by["hot-2"]["joins_per_room_cpu_s"] / by["spread-2"]["joins_per_room_cpu_s"], 3
        ),
        "two_rooms_hot_vs_mixed_spread_per_cpu": round(
            by["hot-2"]["joins_per_room_cpu_s"] / by["spread-2-mixed"]["joins_per_room_cpu_s"], 3
        ),
        "two_rooms_hot_vs_one_room_spread_per_cpu": round(
            by["hot-2"]["joins_per_room_cpu_s"] / by["spread-1"]["joins_per_room_cpu_s"], 3
        ),
        "capacity_hot_per_s": capacity["sustained_per_s"],
        "capacity_spread_per_s": by["spread-capacity"]["sustained_per_s"],
    }


async def latency_curve(stack: BenchStack, first: Room, args) -> dict:
    """One Space, one room process, a phase at each rate of `--latency-curve`: how the answer's and
    the visible latency grow with the room's load (the hot-80 bound is a point on this curve)."""
    probe = Probe(stack)
    try:
        await probe.ready()
        hot = await live_spaces(first, 1)
        phases = []
        for rate in args.latency_curve:  # a rate given twice is a phase of its own, with users of its own
            again = sum(p["offered_per_s"] == rate for p in phases)
            name = f"hot-1@{rate:g}" + (f"#{again + 1}" if again else "")
            phases.append(await _phase(name, [first], hot, rate, args.duration))
        await probe.judge(phases)
    finally:
        probe.kill()
    return {"curve": phases}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help=f"joins/s offered in the spread and hot phases (0: {RATE_SHARE * 100:.0f} %% of the spread capacity "
        "measured; with --eviction-only, the storm's rate: required)",
    )
    parser.add_argument(
        "--capacity-rate", type=float, default=2000, help="joins/s offered to find the capacity"
    )
    parser.add_argument("--duration", type=float, default=8, help="seconds of load per phase")
    parser.add_argument("--spaces", type=int, default=50, help="live Spaces the spread phase uses")
    parser.add_argument(
        "--evict-listeners", type=int, default=3000, help="listeners in the eviction phase's Space"
    )
    parser.add_argument(
        "--shard-joins-per-second",
        type=float,
        default=RoomSettings.model_fields["room_listener_shard_joins_per_second"].default,
        help="PODIUM_ROOM_LISTENER_SHARD_JOINS_PER_SECOND of the room processes (default: the room's "
        "own, %(default)g; 0: no listener shards)",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=2,
        choices=[1, 2, 4],
        help="PODIUM_ROOM_LISTENER_SHARD_LANES of the room processes (default %(default)s: a lane for "
        "each of the two; 1: no lanes, every room writes every shard)",
    )
    parser.add_argument(
        "--eviction-rate",
        type=float,
        default=0,
        help="joins/s arriving during the eviction phase (0: hot-80's rate, 80 %% of the capacity "
        "measured; with --eviction-only, --rate)",
    )
    parser.add_argument("--bans", type=int, default=200, help="listeners moderation removes")
    parser.add_argument("--ban-rate", type=float, default=20, help="removals/s, open loop")
    parser.add_argument(
        "--eviction-only", action="store_true", help="skip the join phases: only the eviction phase"
    )
    parser.add_argument(
        "--latency-curve",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[],
        metavar="RATES",
        help="only one-Space phases at these joins/s (comma-separated): latency against load",
    )
    parser.add_argument(
        "--profile",
        type=lambda text: text.split(","),
        default=[],
        metavar="PHASES",
        help="py-spy each room process during these join phases (comma-separated, e.g. "
        "spread-2,hot-2): their top functions go to the result; their CPU figures include py-spy's cost",
    )
    args = parser.parse_args(argv)
    if args.eviction_only and not (args.rate or args.eviction_rate):
        parser.error("--eviction-only needs the storm's rate: --rate or --eviction-rate")
    if args.profile and (args.latency_curve or args.eviction_only):
        parser.error("--profile names join phases, which --latency-curve and --eviction-only do not run")
    if unknown := sorted(set(args.profile) - set(JOIN_PHASES)):
        parser.error(f"--profile: no join phase {', '.join(unknown)}; the phases: {', '.join(JOIN_PHASES)}")
    return args


def _table(header: str, align: str, rows: list[str]) -> list[str]:
    return [header, align, *rows] if rows else []


def markdown(result: dict) -> str:
    lines = _table(
        "| Phase | rooms | offered/s | sustained/s | joins per room CPU-s | visible p50 / p99 ms | "
        "conflicts per join | machine busy (steal) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        [
            f"| {p['name']} | {p['rooms']} | {p['offered_per_s']:g} | {p['sustained_per_s']} | "
            f"{p['joins_per_room_cpu_s']} | {p['visible_p50_ms']} / {p['visible_p99_ms']} | "
            f"{p['conflicts_per_join']} | {p['machine_busy_share']:.0%} ({p['steal_share']:.0%}) | "
            f"{p['errors'] or 'none'} |"
            for p in result.get("phases", [])
        ],
    )
    lines += _table(
        "| Offered/s | sustained/s | room CPU busy | machine busy (steal) | answer p50 / p99 ms | "
        "answer to visible p50 / p99 ms | visible p50 / p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        [
            f"| {p['offered_per_s']:g} | {p['sustained_per_s']} | {p['room_busy_share']:.0%} | "
            f"{p['machine_busy_share']:.0%} ({p['steal_share']:.0%}) | "
            f"{p['ack_p50_ms']} / {p['ack_p99_ms']} | {p['ack_to_visible_p50_ms']} / "
            f"{p['ack_to_visible_p99_ms']} | {p['visible_p50_ms']} / {p['visible_p99_ms']} | "
            f"{p['errors'] or 'none'} |"
            for p in result.get("curve", [])
        ],
    )
    if "hot_vs_spread_per_cpu" in result:
        lines += [
            "",
            f"Joins per room CPU-second, hot against spread: {result['hot_vs_spread_per_cpu']}x with one room; "
            f"{result['two_rooms_hot_vs_spread_per_cpu']}x with two (against spread-2-mixed "
            f"{result['two_rooms_hot_vs_mixed_spread_per_cpu']}x, against spread-1 "
            f"{result['two_rooms_hot_vs_one_room_spread_per_cpu']}x).",
        ]
    if "eviction" in result:
        e = result["eviction"]
        lines += [
            "",
            f"Eviction, one Space of {e['listeners']} listeners, joins arriving at {e['storm_joins_per_s']:g}/s:",
            "",
            "| Cause | evicted / expected | p50 ms | p99 ms | max ms | room's own mean ms | evictions/s | "
            "room CPU us an eviction |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for cause in ("ban", "policy"):
            c = e[cause]
            lines.append(
                f"| {cause} | {c['evicted']} / {c['expected']} | {c['p50_ms']} | {c['p99_ms']} | "
                f"{c['max_ms']} | {c['room_metric_mean_ms']} | {c.get('evictions_per_s', '')} | "
                f"{c.get('room_cpu_us_per_eviction', '')} |"
            )
    return "\n".join(lines) + "\n"


def cli() -> None:
    args = parse_args()
    started = time.perf_counter()
    result = run(main(args), "uvloop")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hot-space-{result['date'][:19].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    cli()
