"""Every benchmark, against the real stack, in one run: `python -m bench`.

    python -m bench                      # all of them, full size (several minutes)
    python -m bench --quick              # short durations: a smoke test
    python -m bench --only append,rebuild

Benchmarks, in order: fanout, commands, rebuild, restart, append, presence,
moderation, replay, search, webhooks, gateway, hot-space. Each starts what it needs (embedded broker, a fresh database on the
local PostgreSQL, service processes) and tears it down. Each result has the
measured numbers, its targets (a bound or a ratio) and whether each is met,
the CPU seconds of every process it ran, and the load average around it.
Afterwards the benchmark furthest from a target is run again with py-spy
attached to its service process (or to this process, for the in-process
ones), and the top functions are saved ("where the time goes").

Writes bench/results/<timestamp>.json and .md, and replaces the generated
section of bench/RESULTS.md (between the markers), keeping the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import psutil

from bench import stack as bench_stack
from bench.profiling import CpuMeter, Profiler

HERE = Path(__file__).parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
BEGIN = "<!-- bench:generated:begin (python -m bench writes this section; edit outside it) -->"
END = "<!-- bench:generated:end -->"


# Targets


def target(name: str, measured, bound: float, kind: str, unit: str = "", note: str = "") -> dict:
    """kind: '>=' (at least) or '<=' / '<' (at most). `shortfall` > 1 means missed by that factor."""
    ok = measured == measured and measured is not None  # not NaN / None
    if kind == ">=":
        met = ok and measured >= bound
        shortfall = (bound / measured) if ok and measured > 0 else float("inf")
    else:
        met = ok and (measured < bound if kind == "<" else measured <= bound)
        shortfall = (measured / bound) if ok and bound > 0 else float("inf")
    return {
        "name": name,
        "measured": measured,
        "target": f"{kind} {bound:g}{unit}",
        "unit": unit,
        "met": bool(met),
        "shortfall": round(shortfall, 2) if shortfall != float("inf") else None,
        **({"note": note} if note else {}),
    }


def info(name: str, measured, unit: str = "", note: str = "") -> dict:
    """A measured figure with no target."""
    return {"name": name, "measured": measured, "target": "none (reported)", "met": None, "unit": unit} | (
        {"note": note} if note else {}
    )


# The benchmarks


async def fanout(quick: bool) -> dict:
    from bench import media_fanout

    argv = ["--subscribers", "10", "--seconds", "3", "--warmup", "1", "--subscriber-processes", "1"]
    args = media_fanout.parse_args(argv if quick else [])
    raw = await media_fanout.main(args)
    relay, naive = raw["relay"], raw.get("naive", {})
    nominal = args.subscribers * 10 * 50
    lat = relay["latency_ms"]
    return {
        "raw": raw,
        "summary": f"{args.subscribers} gateways x 10 speakers x 50 frames/s, {args.seconds:g} s window",
        "targets": [
            target(
                "frame deliveries/s", relay["deliveries_per_s"], 50_000 if not quick else nominal, ">=", "/s"
            ),
            target("frames lost at nominal load", relay["lost_in_window"], 0, "<="),
            target("p99 publish → receive", lat["p99"], 20, "<", " ms"),
            target("p99.9 publish → receive", lat["p99.9"], 40, "<", " ms"),
            info("p50 publish → receive", lat["p50"], " ms"),
            target(
                "deliveries/s vs naive per-frame streaming",
                raw.get("ratio_deliveries"),
                1,
                ">=",
                "x",
                note=f"naive {naive.get('deliveries_per_s')}/s, p99 {naive.get('latency_ms', {}).get('p99')} ms; "
                f"server CPU per delivery naive/relay = {raw.get('ratio_cpu_per_delivery')}x",
            ),
        ],
        "profile_service": "media-relay",
    }


async def commands(quick: bool) -> dict:
    from bench import room

    args = SimpleNamespace(
        rate=200 if quick else 1000,
        duration=2 if quick else 10,
        spaces=10 if quick else 50,
        rebuild_events=0,
        skip_commands=False,
        skip_rebuild=True,
    )
    raw = await room.main(args)
    j = raw["joins"]
    return {
        "raw": raw,
        "summary": f"JoinSpace open loop at {args.rate}/s for {args.duration} s over {args.spaces} Spaces",
        "targets": [
            target(
                "JoinSpace/s sustained",
                j["sustained_joins_per_s"],
                1000 if not quick else args.rate,
                ">=",
                "/s",
            ),
            target("p99 command → visible in another process", j["visible_p99_ms"], 50, "<", " ms"),
            info("p50 command → visible", j["visible_p50_ms"], " ms"),
            info("p99 command → gRPC answer", j["ack_p99_ms"], " ms"),
            info(
                "acknowledged / planned", f"{j['acknowledged']}/{j['planned']}", note=f"errors {j['errors']}"
            ),
        ],
        "profile_service": "room",
    }


async def rebuild(quick: bool) -> dict:
    from bench.rebuild import run as run_rebuild
    from bench.stack import BenchStack
    from libs.config.settings import PodiumSettings

    events = 10_000 if quick else 200_000
    async with BenchStack() as stack:
        settings = PodiumSettings(kafka_bootstrap_servers=stack.bootstrap, database_url=stack.database_url)
        r = await run_rebuild(settings, events)
    return {
        "raw": {
            "events": r.events,
            "raw_events_per_s": round(r.raw_rate),
            "projection_events_per_s": round(r.projection_rate),
            "ratio": round(r.ratio, 3),
            "floor_events_per_s": round(r.events / r.floor_seconds),
            "floor_ratio": round(r.floor_ratio, 3),
            "decoded_events_per_s": round(r.events / r.decoded_seconds),
            "decoded_ratio": round(r.decoded_ratio, 3),
            "cpu_us_per_event": {
                "raw": round(r.cpu_us(r.raw_cpu), 2),
                "projection": round(r.cpu_us(r.projection_cpu), 2),
                "floor": round(r.cpu_us(r.floor_cpu), 2),
                "decoded": round(r.cpu_us(r.decoded_cpu), 2),
            },
        },
        "summary": f"{r.events:,} room events, 6 partitions, read four times in the same run: raw, the "
        "durable Space directory catching up from its stored position into PostgreSQL, the same "
        "runner with a view that writes nothing (the floor), and raw plus decoding each event",
        "targets": [
            info("durable view catch-up events/s", round(r.projection_rate), "/s"),
            info("raw aiokafka events/s", round(r.raw_rate), "/s"),
            target("catch-up vs raw aiokafka", round(r.ratio, 3), 0.5, ">=", "x"),
            info(
                "floor: a durable view that writes nothing, vs raw aiokafka",
                round(r.floor_ratio, 3),
                "x",
                note=f"{round(r.events / r.floor_seconds):,} events/s",
            ),
            info(
                "decode ceiling: raw aiokafka decoding each event and nothing else, vs raw",
                round(r.decoded_ratio, 3),
                "x",
                note=f"{round(r.events / r.decoded_seconds):,} events/s",
            ),
            info(
                "CPU per event: catch-up / floor / decoded / raw aiokafka (us, this process)",
                f"{r.cpu_us(r.projection_cpu):.1f} / {r.cpu_us(r.floor_cpu):.1f} / "
                f"{r.cpu_us(r.decoded_cpu):.1f} / {r.cpu_us(r.raw_cpu):.1f}",
            ),
        ],
        "profile_service": "self",
    }


async def restart(quick: bool) -> dict:
    from bench import restart as bench_restart

    small, large = (2_000, 40_000) if quick else (20_000, 1_000_000)
    raw = await bench_restart.main(small, large)
    s, big = raw["small"], raw["large"]
    mib = 1024 * 1024
    targets = []
    for name in bench_restart.SERVICES:
        targets += [
            info(
                f"{name}: restart to SERVING, {s['events']:,} / {big['events']:,} events",
                f"{s[name]['restart_seconds']:.2f} / {big[name]['restart_seconds']:.2f}",
                " s",
            ),
            target(
                f"{name}: restart time, large vs small history", raw["restart_ratio"][name], 1.5, "<=", "x"
            ),
            info(
                f"{name}: first start (views built from the log), {big['events']:,} events",
                round(big[name]["first_start_seconds"], 1),
                " s",
            ),
            target(
                f"{name}: RSS after a restart with {big['spaces']:,} ended Spaces vs an empty start",
                raw["rss_ratio"][name],
                1.5,
                "<=",
                "x",
                note=f"{big[name]['rss_after_restart'] / mib:.0f} vs {big[name]['rss_empty'] / mib:.0f} MiB; "
                f"{big[name]['rss_after_first_start'] / mib:.0f} MiB right after building from the log",
            ),
        ]
    return {
        "raw": raw,
        "summary": f"room, moderation, media relay and replay, each alone: {s['events']:,} vs "
        f"{big['events']:,} events of history ({big['spaces']:,} ended Spaces), start to SERVING after a "
        "restart, and RSS",
        "targets": targets,
        "profile_service": "room",
    }  # fmt: skip


async def append(quick: bool) -> dict:
    from bench import append as bench_append

    events = 200 if quick else 4_000
    raw = await bench_append.run(events, 10, 8, (8_000, 2_000))
    targets = []
    for shape in ("single", "batch"):
        s = raw[shape]
        label = "1 event per append" if shape == "single" else f"{s['events_per_append']} events per append"
        targets += [
            info(f"podium append events/s ({label})", s["podium"]["events_per_s"], "/s"),
            info(
                f"vs raw asyncpg ({label})",
                s["ratio_vs_raw"],
                "x",
                note=f"raw {s['raw_asyncpg']['events_per_s']}/s",
            ),
            target(
                f"vs eventsourcing library ({label})",
                s["ratio_vs_eventsourcing"],
                2,
                ">=",
                "x",
                note=f"eventsourcing {s['eventsourcing']['events_per_s']}/s",
            ),
        ]
    return {
        "raw": raw,
        "summary": f"{events:,} events per shape and writer, {raw['concurrency']} connections each, "
        f"{raw['postgresql']}, synchronous_commit={raw['synchronous_commit']}",
        "targets": targets,
        "profile_service": "self",
    }


async def presence(quick: bool) -> dict:
    from bench import presence as bench_presence

    args = SimpleNamespace(
        listeners=10_000 if quick else 100_000,
        spaces=100 if quick else 1_000,
        gateways=10,
        batch=1_000 if quick else 2_000,
        rate=5_000 if quick else 20_000,
        duration=3 if quick else 15,
        drain_timeout=30 if quick else 90,
        users_per_part=2_000,
    )
    raw = await bench_presence.main(args)
    return {
        "raw": raw,
        "summary": f"{args.listeners:,} listeners in {args.spaces:,} Spaces, {args.gateways} gateways; "
        f"heartbeats offered at {args.rate:,}/s for {args.duration} s",
        "targets": [
            target(
                "heartbeat entries per CPU-second (one core)",
                raw["entries_per_cpu_second"],
                20_000,
                ">=",
                "/s",
            ),
            info("entries/s end to end (wall clock, shared cores)", raw["processed_entries_per_s"], "/s"),
            target("listeners wrongly timed out", raw["wrong_timeouts"], 0, "<="),
            target(
                "heartbeat backlog left after the drain wait",
                raw["heartbeat_records_not_committed_at_end"],
                0,
                "<=",
                note=f"records; {raw['connected_seen']:,} of {args.listeners:,} joins seen",
            ),
            info(
                "memory per 10,000 present users",
                raw["rss_per_10k_users_mb"],
                " MB",
                note=f"RSS growth over {raw.get('present_when_rss_read', args.listeners):,} users present",
            ),
        ],
        "profile_service": "presence",
    }


async def moderation(quick: bool) -> dict:
    from bench import mute_forwarding

    args = mute_forwarding.parse_args(["--spaces", "3", "--speakers", "3"] if quick else [])
    raw = await mute_forwarding.main(args)
    a, e = raw["stopped_after_ack_ms"], raw["stopped_after_event_reached_relay_ms"]
    return {
        "raw": raw,
        "summary": f"{raw['mutes_planned']} mutes at {args.rate:g}/s over {args.spaces} Spaces, "
        "each speaker publishing 50 frames/s around its mute",
        "targets": [
            target("p99 MuteParticipant ack → last frame forwarded", a["p99"], 200, "<", " ms"),
            info("p50 ack → last frame forwarded", a["p50"], " ms"),
            target("p99 mute reached the relay → first frame refused", e["p99"], 200, "<", " ms"),
            info(
                "mutes acknowledged / speakers whose frames were refused",
                f"{raw['mutes_acknowledged']}/{raw['speakers_with_frames_refused']}",
            ),
        ],
        "profile_service": "media-relay",
    }


async def replay(quick: bool) -> dict:
    from bench import replay as bench_replay

    args = SimpleNamespace(
        minutes=0.5 if quick else 5, speakers=3, streams=10 if quick else 100, stream_rate=20
    )
    raw = await bench_replay.main(args)
    f = raw["service_finalize"]
    return {
        "raw": raw,
        "summary": f"{raw['recording_seconds']} s recorded by {args.speakers} speakers; "
        f"{args.streams} StreamReplay calls each from the start and with a seek, open loop at "
        f"{args.stream_rate:g}/s",
        "targets": [
            target(
                "finalizing: seconds of recording per second",
                f["recording_s_per_s"],
                1,
                ">=",
                " s/s",
                note="bound set here (faster than real time); the issue gives none",
            ),
            info("finalizing: seconds of recording per replay CPU-second",
                 round(raw["recording_seconds"] / f["replay_cpu_s"], 1) if f["replay_cpu_s"] else None),
            target("StreamReplay start p95", raw["stream_start"]["p95_ms"], 100, "<", " ms",
                   note="bound set here; the issue gives none"),
            target("StreamReplay seek p95", raw["seek"]["p95_ms"], 100, "<", " ms",
                   note="bound set here; the issue gives none"),
        ],
        "profile_service": "replay",
    }  # fmt: skip


async def search(quick: bool) -> dict:
    from bench import search as bench_search

    spaces, calls = (5_000, 600) if quick else (100_000, 6_000)
    raw = bench_search.summary(await bench_search.run(spaces, calls))
    kinds = raw["by_kind"]
    return {
        "raw": raw,
        "summary": f"{raw['spaces']:,} Spaces in the room's directory (built from {raw['events']:,} "
        f"events), {raw['calls']:,} SearchSpaces calls over gRPC one at a time, a mix of six kinds",
        "targets": [
            target("SearchSpaces p99", raw["p99_ms"], 50, "<", " ms"),
            info("SearchSpaces p50", raw["p50_ms"], " ms"),
            *(
                info(f"p50 / p99: {kind}", f"{k['p50_ms']} / {k['p99_ms']}", " ms")
                for kind, k in kinds.items()
            ),
            info("room start, its directory built from the log", raw["room_start_with_directory_s"], " s"),
        ],
        "profile_service": "room",
    }


async def webhooks(quick: bool) -> dict:
    from bench import webhooks as bench_webhooks

    args = bench_webhooks.parse_args(
        ["--rate", "100", "--seconds", "3", "--spaces", "20", "--backlog", "1000"] if quick else []
    )
    raw = await bench_webhooks.main(args)
    steady, backlog = raw["steady"], raw["backlog"]
    lat, stages = steady["latency_ms"], steady["stages_ms"]
    return {
        "raw": raw,
        "summary": f"a gateway's webhook for every event; room events over {args.spaces} Spaces open loop at "
        f"{args.rate:g}/s for {args.seconds:g} s, then a backlog of {args.backlog:,} at once; an aiohttp "
        "receiver in a process of its own answering 204",
        "targets": [
            target(f"p99 event → POST at {args.rate:g} events/s", lat["p99"], 1000, "<", " ms"),
            info("p50 event → POST", lat["p50"], " ms",
                 note=f"event → enqueued p50 {stages['enqueue']['p50']} / p99 {stages['enqueue']['p99']} ms; "
                 f"enqueued → answered p50 {stages['deliver']['p50']} / p99 {stages['deliver']['p99']} ms"),
            target("deliveries/s sustained", steady["delivered_per_s"], 0.95 * args.rate, ">=", "/s",
                   note=f"kept up with the {args.rate:g}/s offered, within 5 %"),
            info("deliveries/s draining a backlog", backlog["deliveries_per_s"], "/s",
                 note=f"{backlog['events']:,} events in {backlog['drain_seconds']} s"),
            target("events not delivered", steady["published"] - steady["delivered"]
                   + backlog["events"] - backlog["delivered"], 0, "<="),
            target("events delivered out of order in their Space", raw["out_of_order"], 0, "<="),
            info("events delivered twice", raw["duplicates"]),
            info("webhooks CPU per delivery (steady)",
                 round(steady["webhooks_cpu_s"] / max(steady["delivered"], 1) * 1000, 2), " ms"),
        ],
        "profile_service": "webhooks",
    }  # fmt: skip


async def gateway(quick: bool) -> dict:
    from bench import gateway as bench_gateway

    args = bench_gateway.parse_args(
        ["--onsets", "10", "--listeners", "3", "--cpu-seconds", "3"] if quick else []
    )
    raw = await bench_gateway.main(args)
    lat, cpu = raw["latency_ms"], raw["gateway_cpu"]
    return {
        "raw": raw,
        "summary": f"two headless Chromium browsers through the gateway and the relay: A's fake microphone "
        f"plays 250 ms tone bursts once a second, B's page detects them; {raw['onsets_spoken']} onsets; "
        f"then {args.listeners} more listeners (aiortc peers) for the CPU figure",
        "targets": [
            target("p99 mouth-to-ear, browser A's microphone → browser B's analyser", lat["p99"], 400, "<", " ms"),
            info("p50 mouth-to-ear", lat["p50"], " ms", note=f"min {lat['min']} / max {lat['max']} ms"),
            target("onsets heard at B", raw["onsets_heard"], raw["onsets_spoken"], ">="),
            info("of which: frame capture at A's gateway → back on Subscribe, p50 / p99 (bucket bounds)",
                 f"{raw['frame_age_ms']['p50']} / {raw['frame_age_ms']['p99']}", " ms"),
            info("frames sent to listeners as the relay's own Opus (no re-encode)",
                 round(100 * raw["frames"].get("passthrough", 0)
                       / max(1, raw["frames"].get("passthrough", 0) + raw["frames"].get("mixed", 0)), 1), " %",
                 note=f"frame paths: {raw['frames']}"),
            info("gateway CPU per listener stream", cpu["per_listener_stream_pct"], " % of a core",
                 note=f"one speaker and one listener: {cpu['one_listener_one_speaker_pct']} %"),
        ],
        "profile_service": "gateway",
    }  # fmt: skip


async def hot_space(quick: bool) -> dict:
    from bench import hot_space as bench_hot

    args = bench_hot.parse_args(
        ["--rate", "200", "--capacity-rate", "600", "--duration", "3", "--spaces", "10"] if quick else []
    )
    raw = await bench_hot.main(args)
    by = {p["name"]: p for p in raw["phases"]}
    hot2, at80 = by["hot-2"], by["hot-80"]
    return {
        "raw": raw,
        "summary": f"JoinSpace open loop at {raw['rate_per_s']:g}/s"
        + ("" if args.rate else f" ({bench_hot.RATE_SHARE:.0%} of the spread capacity)")
        + f" into one Space against {args.spaces} Spaces, "
        f"{args.duration:g} s a phase; one Space with two room processes; capacity offered "
        f"{args.capacity_rate:g}/s",
        "targets": [
            target("hot-Space joins per room CPU-s vs spread, 1 room", raw["hot_vs_spread_per_cpu"], 0.9, ">=", "x"),
            target("hot-Space joins per room CPU-s vs spread, 2 rooms", raw["two_rooms_hot_vs_spread_per_cpu"],
                   0.9, ">=", "x",
                   note=f"spread with each Space on one room; against spread with each Space's joins "
                        f"alternating over both: {raw['two_rooms_hot_vs_mixed_spread_per_cpu']}x, over 1 room: "
                        f"{raw['two_rooms_hot_vs_one_room_spread_per_cpu']}x"),
            target("ABORTED between 2 room replicas, one Space", round(100 * hot2["aborted_share"], 2), 1, "<", " %",
                   note=f"appends that lost the stream to the other replica: {hot2['conflicts_per_join']} a join"),
            target(f"visible p99 at 80 % of capacity ({at80['offered_per_s']:g}/s)", at80["visible_p99_ms"], 50,
                   "<", " ms"),
            info("one Space's capacity, one room process", raw["capacity_hot_per_s"], " joins/s",
                 note=f"spread over {args.spaces} Spaces: {raw['capacity_spread_per_s']} joins/s"),
            *(target(f"eviction p99, {what}", raw["eviction"][cause]["p99_ms"], 1000, "<", " ms",
                     note=f"{raw['eviction'][cause]['evicted']} of {raw['eviction'][cause]['expected']} evicted, "
                          f"joins arriving at {raw['eviction']['storm_joins_per_s']:g}/s")
              for cause, what in (("ban", "a ban (moderation's removal)"),
                                  ("policy", "a switch to invite-only, every listener"))),
        ],
        "profile_service": "room",
    }  # fmt: skip


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[bool], Awaitable[dict]]


BENCHMARKS = (
    Benchmark("fanout", "Relay fan-out", fanout),
    Benchmark("commands", "Commands", commands),
    Benchmark("rebuild", "Projection rebuild", rebuild),
    Benchmark("restart", "Restart and memory vs history", restart),
    Benchmark("append", "Event append", append),
    Benchmark("presence", "Presence", presence),
    Benchmark("moderation", "Moderation: mute → forwarding stopped", moderation),
    Benchmark("replay", "Replay", replay),
    Benchmark("search", "Discovery: SearchSpaces", search),
    Benchmark("webhooks", "Webhooks: event → POST", webhooks),
    Benchmark("gateway", "Gateway: mouth-to-ear between two browsers", gateway),
    Benchmark("hot-space", "A celebrity Space: joins into one Space", hot_space),
)


# The run


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE.parent).stdout.strip()


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def header() -> dict:
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def run_one(bench: Benchmark, quick: bool, meter: CpuMeter) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]
    before = meter.snapshot()
    started = time.perf_counter()
    try:
        result = await bench.run(quick)
        result["error"] = None
    except Exception as e:  # one broken benchmark does not lose the others' results
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}", "targets": [], "raw": {}}
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = CpuMeter.delta(before, meter.snapshot())
    result["load_average_before"] = load_before
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["title"] = bench.title
    return result


def worst(results: dict) -> tuple[str, dict] | None:
    """The benchmark whose target is missed by the largest factor."""
    candidates = [
        (t["shortfall"] if t["shortfall"] is not None else float("inf"), name, t)
        for name, r in results.items()
        for t in r.get("targets", [])
        if t.get("met") is False
    ]
    if not candidates:
        return None
    _, name, t = max(candidates, key=lambda c: c[0])
    return name, t


async def profile(bench: Benchmark, service: str, quick: bool, out: Path) -> dict:
    """Runs `bench` again with py-spy attached to `service` (or to this process for 'self')."""
    profiler = None
    if service == "self":
        profiler = Profiler(os.getpid(), out, label="the benchmark process itself (in-process benchmark)")
        profiler.start()
    else:
        bench_stack.PROFILE.clear()
        bench_stack.PROFILE.update({"service": service, "out": out})
    try:
        await bench.run(quick)
    finally:
        if profiler is None:
            profiler = bench_stack.PROFILE.get("profiler")
            bench_stack.PROFILE.clear()
        if profiler is not None:
            profiler.stop()
    if profiler is None:
        return {"error": f"no {service} process was started"}
    return profiler.summary()


async def main(names: list[str], quick: bool, do_profile: bool, stamp: str, force_profile: str = "") -> dict:
    os.environ.setdefault("PODIUM_LOG_LEVEL", "WARNING")
    report = {**header(), "quick": quick, "benchmarks": {}}
    meter = CpuMeter()
    meter.start()
    machine_before = psutil.cpu_times()
    began = time.perf_counter()
    try:
        for bench in BENCHMARKS:
            if bench.name not in names:
                continue
            print(f"== {bench.name} ==", flush=True)
            report["benchmarks"][bench.name] = await run_one(bench, quick, meter)
            print(json.dumps(report["benchmarks"][bench.name]["targets"], indent=1), flush=True)
        report["benchmarks_wall_seconds"] = round(time.perf_counter() - began, 1)
        found = worst(report["benchmarks"])
        if force_profile and force_profile in report["benchmarks"]:
            found = (force_profile, next(
                (t for t in report["benchmarks"][force_profile]["targets"] if t.get("met") is False),
                {"name": "chosen with --profile", "measured": "", "target": "", "shortfall": None},
            ))  # fmt: skip
        if do_profile and found:
            name, missed = found
            bench = next(b for b in BENCHMARKS if b.name == name)
            service = report["benchmarks"][name].get("profile_service", "self")
            print(f"== profiling {name} ({service}): furthest from a target: {missed['name']} ==", flush=True)
            RESULTS_DIR.mkdir(exist_ok=True)
            started = time.perf_counter()
            summary = await profile(bench, service, quick, RESULTS_DIR / f"{stamp}-{name}.pyspy.txt")
            report["profile"] = {
                "benchmark": name,
                "service": service,
                "why": f"{missed['name']}: measured {missed['measured']}, target {missed['target']} "
                + (
                    f"(missed by {missed['shortfall']}x)" if missed["shortfall"] else "(a bound of 0, missed)"
                ),
                "note": "A second run of that benchmark, with the profiler attached",
                "wall_seconds": round(time.perf_counter() - started, 1),
                **summary,
            }
    finally:
        meter.stop()
    report["total_wall_seconds"] = round(time.perf_counter() - began, 1)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine_cpu_during_run"] = machine_share(machine_before, psutil.cpu_times(), report)
    return report


def machine_share(before, after, report: dict) -> dict:
    """How busy the whole machine was during the run, and how much of that was ours."""
    total, busy, steal = bench_stack.machine_cpu_seconds(before, after)
    ours = sum(sum(r.get("cpu_seconds", {}).values()) for r in report["benchmarks"].values())
    return {
        "busy_share": round(busy / total, 3),
        "steal_share": round(steal / total, 3),
        "benchmark_processes_share": round(ours / total, 3),
        "other_work_share": round(max(0.0, busy - ours) / total, 3),
    }


# Writing it down


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"### {report['date']} · `python -m bench{' --quick' if report['quick'] else ''}`",
        "",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}",
        f"- **Commit:** {report['commit']}",
        f"- **Load average** (1, 5, 15 min) at start {report['load_average_at_start']}, "
        f"at end {report['load_average_at_end']} (the 2 cores are shared with other work)",
        *(
            [
                f"- **Machine CPU during the run:** {c['busy_share']:.0%} busy, of which the benchmarks' "
                f"processes {c['benchmark_processes_share']:.0%} and other work {c['other_work_share']:.0%}; "
                f"steal {c['steal_share']:.0%}"
            ]
            if (c := report.get("machine_cpu_during_run"))
            else []
        ),
        f"- **Took** {report['total_wall_seconds']:.0f} s "
        f"({report.get('benchmarks_wall_seconds', 0):.0f} s of benchmarks"
        + (
            f", {report['profile']['wall_seconds']:.0f} s the profiled re-run)"
            if report.get("profile")
            else ")"
        ),
        "",
        "| # | Benchmark | Measure | Measured | Target | Met? |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["benchmarks"].values(), start=1):
        if r.get("error"):
            lines.append(f"| {i} | {r['title']} | **failed** | {r['error']} | | |")
            continue
        for t in r["targets"]:
            unit = t.get("unit", "")
            met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
            note = f" ({t['note']})" if t.get("note") else ""
            lines.append(
                f"| {i} | {r['title']} | {t['name']}{note} | {_fmt(t['measured'])}{unit} | {t['target']} | {met} |"
            )
    lines += [
        "",
        "Per benchmark: what ran, wall time, load average before → after, and CPU seconds by process:",
        "",
    ]
    for name, r in report["benchmarks"].items():
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_seconds"].items())
        lines.append(
            f"- **{r['title']}** (`--only {name}`): {r.get('summary', '')}; {r['wall_seconds']:.0f} s, "
            f"load {r['load_average_before'][0]} → {r['load_average_after'][0]}; CPU-s: {cpu}"
        )
    p = report.get("profile")
    if p:
        lines += [
            "",
            f"**Where the time goes** — {p['benchmark']}, furthest from its target ({p['why']}). "
            f"{p.get('note', '')}: {p.get('method', '')}, {p.get('samples', 0):,} samples.",
        ]
        if p.get("error"):
            lines.append(f"Profiling failed: {p['error']}")
        else:
            lines += ["", "| Own time | Function | | Incl. callees | Function |", "|---|---|---|---|---|"]
            for a, b in zip(p["top_own"][:12], p["top_inclusive"][:12], strict=False):
                lines.append(
                    f"| {a['share']:.1%} | `{a['function']}` | | {b['share']:.1%} | `{b['function']}` |"
                )
    return "\n".join(lines) + "\n"


def update_results_md(section: str) -> None:
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    block = f"{BEGIN}\n## Latest full run (generated)\n\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        first, _, rest = text.partition("\n## ")
        text = f"{first.rstrip()}\n\n{block}\n\n## {rest}" if rest else f"{text.rstrip()}\n\n{block}\n"
    RESULTS_MD.write_text(text)


def cli(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(b.name for b in BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke test)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled re-run")
    parser.add_argument(
        "--no-update",
        action="store_true",
        help="do not touch bench/RESULTS.md (only a complete run without --quick updates it)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--profile", default="", metavar="NAME", help="profile this benchmark instead of the furthest miss"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only rewrite the Markdown (and RESULTS.md) from a result"
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text())
        if (p := report.get("profile")) and p.get("raw_profile") and Path(p["raw_profile"]).exists():
            pid = int(p["method"].split("--pid ")[1].split()[0])
            again = Profiler(pid, Path(p["raw_profile"]), label=p["method"].split("(", 1)[1].rstrip(")"))
            p.update(again.summary())
        if p:
            p["why"] = p["why"].replace("(missed by Nonex)", "(a bound of 0, missed)")
            args.render.write_text(json.dumps(report, indent=2, default=str))
        section = markdown(report)
        args.render.with_suffix(".md").write_text(section)
        if not (report["quick"] or args.no_update) and report.get("complete", True):
            update_results_md(section)
        print(section)
        return report
    known = [b.name for b in BENCHMARKS]
    names = [n.strip() for n in args.only.split(",") if n.strip()] or known
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"unknown benchmark(s) {unknown}; choose from {known}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    from libs.config.runtime import run

    do_profile = bool(args.profile) or not (args.no_profile or args.quick)
    report = run(main(names, args.quick, do_profile, stamp, args.profile), "uvloop")
    report["complete"] = names == known
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.results_dir / f"{stamp}.json"
    md_path = args.results_dir / f"{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    section = markdown(report)
    md_path.write_text(section)
    # Only a complete, full-size run replaces the recorded one.
    if not (args.no_update or args.quick) and report["complete"]:
        update_results_md(section)
    print(section)
    print(f"wrote {json_path} and {md_path} in {report['total_wall_seconds']:.0f} s")
    return report
