"""The fault scenarios' load generator and history checker.

`Load` drives one live Space through real gRPC: listeners cycle join -> request to
speak -> leave (each call with its own `request_id`), the host mutes and unmutes
its speakers, and a gateway heartbeats everyone it believes is in the Space. A
call that fails with a retryable code (UNAVAILABLE, DEADLINE_EXCEEDED, ...) is
retried with the same `request_id` until it is acknowledged; a call rejected for
a business reason is recorded as rejected. Every call lands in the `History`.

`check` then waits for the system to converge and compares the history with the
log (the `events` tables in PostgreSQL and the topics on the broker) and the
services' views with a fresh fold of the log:

- nothing acknowledged is lost: every acknowledged `request_id` caused its event;
- nothing is applied twice: per stream, versions are 1..n; each `request_id`
  caused its events exactly once; a rejected call caused nothing;
- views converge: ListParticipants and GetSpace equal `evolve` folded over the
  room topic; the moderation log equals the moderation events; presence equals
  the users still heartbeating.

`record` appends the scenario's numbers to `bench/results/faults.jsonl`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc

from libs.config.settings import PodiumSettings
from libs.domain.streams import is_space_stream
from libs.events.envelope import EventEnvelope
from libs.events.tail import space_history
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from podium.presence.v1 import presence_types_pb2 as pt
from services.room.domain.evolve import evolve
from services.room.domain.state import INITIAL
from tests.integration.clients import (
    ModerationClient,
    PresenceClient,
    PresenceGateway,
    RoomClient,
    error_reason,
)

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "faults.jsonl"

#: Codes after which the outcome is unknown, or known to be nothing yet (ABORTED: the stream kept
#: changing under the command, as when replicas race for one Space): the call is retried with the
#: same request_id, as a client would.
RETRYABLE = {
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}
#: Per kind of call, the event(s) an acknowledged call causes (short type names).
EFFECTS = {
    "join": ["ParticipantJoined"],
    "request_to_speak": ["SpeakRequested"],
    "leave": ["ParticipantLeft"],
    "mute": ["ParticipantMuted"],
    "unmute": ["ParticipantUnmuted"],
}


# What a leave through a listener shard releases on the Space's own stream, caused by the same
# request (ADR 0012): on one stream the ParticipantLeft itself lowers the hand and ends the voice.
RELEASED = {"SpeakRequestWithdrawn", "SpeakerRemoved", "CoHostRemoved"}


def _own_effects(kind: str, effects: list[str]) -> list[str]:
    if kind == "leave" and "ParticipantLeft" in effects:
        return [e for e in effects if e not in RELEASED]
    return effects


def awaiting(coro, depth: int = 20) -> list[str]:
    """Where a suspended coroutine waits, through what it awaits (a task's own stack shows only
    its outermost frame)."""
    out = []
    while coro is not None and depth:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        depth -= 1
    if coro is not None:
        out.append(repr(coro))
    return out or ["(no frame)"]


async def cancel_all(tasks, timeout: float = 10.0) -> None:
    """Cancels the tasks and waits for them, but not for ever: one that swallows its cancellation
    fails the scenario, with where it waits, instead of hanging it."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if pending:
        stuck = "\n".join(
            f"{t.get_name()}: " + " <- ".join(reversed(awaiting(t.get_coro()))) for t in pending
        )
        raise AssertionError(f"{len(pending)} task(s) ignored cancellation for {timeout} s:\n{stuck}")


@dataclass
class Call:
    kind: str
    user_id: str
    request_id: str
    service: str  # "room" or "moderation": whose events it causes
    outcome: str = "pending"  # acknowledged, rejected, or pending (never answered)
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    reason: str = ""  # ErrorInfo reason of a rejection


@dataclass
class History:
    calls: list[Call] = field(default_factory=list)
    heartbeats_ok: int = 0
    heartbeats_failed: int = 0

    def rejections(self) -> Counter:
        return Counter(f"{c.errors[-1]}:{c.reason}" for c in self.calls if c.outcome == "rejected")

    def by_outcome(self, outcome: str) -> list[Call]:
        return [c for c in self.calls if c.outcome == outcome]

    def error_codes(self, service: str | None = None) -> Counter:
        """How often each status code was seen (for one service's calls, or all)."""
        return Counter(e for c in self.calls if service in (None, c.service) for e in c.errors)


class Load:
    """A Space under load; `start()` runs it in the background, `finish()` ends it (every call answered)."""

    def __init__(
        self,
        room: grpc.aio.Channel,
        *,
        moderation: grpc.aio.Channel | None = None,
        presence: grpc.aio.Channel | None = None,
        listeners: int = 8,
        speakers: int = 2,
        call_timeout: float = 2.0,
        prefix: str = "f",
    ):
        self.prefix = prefix
        self.channels = {"room": room, "moderation": moderation, "presence": presence}
        self.host = RoomClient(room, f"{prefix}-host")
        self.host_moderation = ModerationClient(moderation, f"{prefix}-host") if moderation else None
        self.gateway = PresenceGateway(presence, "gateway-faults") if presence else None
        self.listeners = [RoomClient(room, f"{prefix}-l{i}") for i in range(listeners)]
        self.speakers = [RoomClient(room, f"{prefix}-s{i}") for i in range(speakers)]
        self.call_timeout = call_timeout
        self.history = History()
        self.space_id = ""
        self.joined: set[str] = set()
        self.reported_at: dict[
            str, float
        ] = {}  # user -> when the last acknowledged report with them was sent
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._heartbeat_task: asyncio.Task | None = None

    async def setup(self, *, recording: bool = False) -> str:
        created = await self.host.CreateSpace(title="under fault", recording_enabled=recording)
        self.space_id = created.space.space_id
        await self.host.StartSpace(space_id=self.space_id)
        self.joined.add(self.host.user_id)
        for speaker in self.speakers:
            await speaker.JoinSpace(space_id=self.space_id)
            await self.host.InviteToSpeak(space_id=self.space_id, user_id=speaker.user_id)
            self.joined.add(speaker.user_id)
        return self.space_id

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listener(c)) for c in self.listeners]
        if self.host_moderation:
            self._tasks += [asyncio.create_task(self._mutes(s.user_id)) for s in self.speakers]
        if self.gateway:
            self._heartbeat_task = asyncio.create_task(self._heartbeats())

    async def finish(self, timeout: float = 45.0) -> History:
        """Stops issuing new calls; waits (up to `timeout`) for every started call to be answered."""
        self._stop.set()
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self._tasks)
        return self.history

    async def close(self) -> None:
        self._stop.set()
        tasks = [*self._tasks, *([self._heartbeat_task] if self._heartbeat_task else [])]
        await cancel_all(tasks)

    async def call(self, kind: str, who: str, service: str, rpc, **fields) -> Call:
        """One call about user `who`: retried with the same request_id while its outcome is unknown."""
        request_id = f"{self.prefix}-{kind}-{who}-{len(self.history.calls)}"
        record = Call(kind, who, request_id, service)
        self.history.calls.append(record)
        while True:
            record.attempts += 1
            try:
                await asyncio.wait_for(rpc(request_id=request_id, **fields), self.call_timeout)
            except TimeoutError:
                record.errors.append("DEADLINE_EXCEEDED")
            except grpc.aio.AioRpcError as e:
                record.errors.append(e.code().name)
                if e.code() not in RETRYABLE:
                    record.outcome = "rejected"
                    record.reason = error_reason(e)
                    return record
            else:
                record.outcome = "acknowledged"
                return record
            await asyncio.sleep(0.2)

    async def _listener(self, client: RoomClient) -> None:
        user = client.user_id
        while not self._stop.is_set():
            join = await self.call("join", user, "room", client.JoinSpace, space_id=self.space_id)
            if join.outcome != "acknowledged":
                await asyncio.sleep(0.2)
                continue
            self.joined.add(user)
            await asyncio.sleep(0.05)
            await self.call("request_to_speak", user, "room", client.RequestToSpeak, space_id=self.space_id)
            await asyncio.sleep(0.05)
            leave = await self.call("leave", user, "room", client.LeaveSpace, space_id=self.space_id)
            if leave.outcome == "acknowledged":
                self.joined.discard(user)
            await asyncio.sleep(0.05)

    async def _mutes(self, speaker: str) -> None:
        assert self.host_moderation is not None
        kind = "mute"
        while not self._stop.is_set():
            rpc = getattr(self.host_moderation, "MuteParticipant" if kind == "mute" else "UnmuteParticipant")
            done = await self.call(kind, speaker, "moderation", rpc, space_id=self.space_id, user_id=speaker)
            if done.outcome == "acknowledged":
                kind = "unmute" if kind == "mute" else "mute"
            await asyncio.sleep(0.1)

    async def _heartbeats(self) -> None:
        assert self.gateway is not None
        while True:
            users = sorted(self.joined)
            entries = [pt.PresenceEntry(user_id=u, space_id=self.space_id) for u in users]
            sent = time.time()
            try:
                await asyncio.wait_for(
                    self.gateway.ReportPresence(gateway_id="gw-faults", entries=entries), 2
                )
                self.history.heartbeats_ok += 1
                self.reported_at.update(dict.fromkeys(users, sent))
            except (grpc.aio.AioRpcError, TimeoutError):
                self.history.heartbeats_failed += 1
            await asyncio.sleep(0.5)


# --- the log ---------------------------------------------------------------------------------------


async def stored_events(
    database_url: str, schema: str, space_id: str
) -> list[tuple[str, int, EventEnvelope]]:
    """(stream id, version, envelope) of every event of the Space in the service's `events` table."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            f"SELECT stream_id, version, envelope FROM {schema}.events WHERE space_id = $1"
            " ORDER BY stream_id, version",
            space_id,
        )
    finally:
        await conn.close()
    return [(r["stream_id"], r["version"], EventEnvelope.FromString(bytes(r["envelope"]))) for r in rows]


def short(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


@dataclass
class Verdict:
    acknowledged: int = 0
    rejected: int = 0
    pending: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    rejected_with_effect: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    noops: int = 0


def judge(history: History, events: dict[str, list[tuple[str, int, EventEnvelope]]]) -> Verdict:
    """Acknowledged calls against the stored events (per service schema)."""
    verdict = Verdict()
    caused: dict[str, list[str]] = {}
    for rows in events.values():
        by_stream: dict[str, list[int]] = {}
        for stream, version, envelope in rows:
            by_stream.setdefault(stream, []).append(version)
            caused.setdefault(envelope.causation_id, []).append(short(envelope.event_type))
        for stream, versions in by_stream.items():
            if versions != list(range(1, len(versions) + 1)):
                verdict.gaps.append(f"{stream}: {versions}")
    request_ids = {c.request_id for c in history.calls}
    system_leaves = {  # user -> versions at which something other than our calls took them out
        (e.stream_id, v): e
        for _, v, e in events.get("room", [])
        if short(e.event_type) == "ParticipantLeft" and e.causation_id not in request_ids
    }
    version_of = {e.causation_id: v for _, v, e in events.get("room", [])}
    last_join: dict[str, str] = {}
    for c in history.calls:
        effects = _own_effects(c.kind, caused.get(c.request_id, []))
        if c.kind == "join" and c.outcome == "acknowledged":
            last_join[c.user_id] = c.request_id
        if c.outcome == "acknowledged":
            verdict.acknowledged += 1
            if not effects and c.kind == "leave" and _taken_out(c, last_join, version_of, system_leaves):
                verdict.noops += 1  # presence timed them out first: leaving is then a no-op
            elif not effects:
                verdict.lost.append(c.request_id)
            elif effects != EFFECTS[c.kind]:
                verdict.duplicated.append(f"{c.request_id}: {effects}")
        elif c.outcome == "rejected":
            verdict.rejected += 1
            if effects:
                verdict.rejected_with_effect.append(f"{c.request_id} ({c.errors}): {effects}")
        else:
            verdict.pending += 1
            if len(effects) > len(EFFECTS[c.kind]):
                verdict.duplicated.append(f"{c.request_id}: {effects}")
    return verdict


def _taken_out(call: Call, last_join, version_of, system_leaves) -> bool:
    """Whether the system (a presence timeout) took `call.user_id` out after their last join."""
    joined_at = version_of.get(last_join.get(call.user_id, ""), 0)
    return any(
        version > joined_at and _user_of(e) == call.user_id for (_, version), e in system_leaves.items()
    )


def _user_of(envelope: EventEnvelope) -> str:
    from libs.events.envelope import unwrap

    return getattr(unwrap(envelope), "user_id", "")


# --- the views -------------------------------------------------------------------------------------


async def room_fold(bootstrap: str, space_id: str):
    """The Space as a fresh replay of the room topic makes it."""
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)
    state = INITIAL
    for payload, at in await space_history(settings, ROOM_EVENTS.name, space_id):
        state = evolve(state, payload, at)
    return state


async def moderation_log_versions(bootstrap: str, space_id: str) -> int:
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)
    return len(await space_history(settings, MODERATION_EVENTS.name, space_id))


async def room_view(room: grpc.aio.Channel, space_id: str, user: str = "f-observer"):
    client = RoomClient(room, user)
    space = (await client.GetSpace(space_id=space_id)).space
    people = (await client.ListParticipants(space_id=space_id, page_size=1000)).participants
    return space, {p.user_id: p.role for p in people}


@dataclass
class Convergence:
    seconds: float
    mismatches: list[str]


async def settle(load: Load, bootstrap: str, database_url: str, timeout: float = 30.0) -> Convergence:
    """`converge` for the load's Space over every view its calls went to."""
    return await converge(
        bootstrap=bootstrap,
        database_url=database_url,
        space_id=load.space_id,
        room=load.channels["room"],
        moderation=load.channels["moderation"],
        presence=load.channels["presence"],
        load=load,
        timeout=timeout,
    )


async def judge_stored(history: History, database_url: str, space_id: str) -> Verdict:
    """`judge` against the room's and moderation's stored events of the Space."""
    events = {s: await stored_events(database_url, s, space_id) for s in ("room", "moderation")}
    return judge(history, events)


async def converge(
    *,
    bootstrap: str,
    database_url: str,
    space_id: str,
    room: grpc.aio.Channel,
    moderation: grpc.aio.Channel | None = None,
    presence: grpc.aio.Channel | None = None,
    load: Load | None = None,
    timeout: float = 30.0,
) -> Convergence:
    """Polls until the log (PostgreSQL = broker) and every view agree; returns how long it took,
    or the last differences seen when they never did."""
    started = time.monotonic()
    mismatches: list[str] = ["never checked"]
    while time.monotonic() - started < timeout:
        try:
            # One look may not outlast the whole wait: a read of the log or a view call that hangs
            # must show as a mismatch, not hang the scenario.
            bound = asyncio.timeout(max(1.0, timeout - (time.monotonic() - started)))
            async with bound:
                mismatches = await _differences(
                    bootstrap, database_url, space_id, room, moderation, presence, load
                )
        except Exception as e:  # a view or the log not answering yet: keep polling
            mismatches = [f"{type(e).__name__}: {e}"]
            if isinstance(e, TimeoutError) and bound.expired():
                mismatches = ["a look at the log and the views did not finish before the wait ran out"]
        if not mismatches:
            return Convergence(time.monotonic() - started, [])
        await asyncio.sleep(0.5)
    return Convergence(time.monotonic() - started, mismatches)


async def _differences(bootstrap, database_url, space_id, room, moderation, presence, load) -> list[str]:
    out: list[str] = []
    stored = await stored_events(database_url, "room", space_id)
    fold = await room_fold(bootstrap, space_id)
    if fold.version != len(stored):
        out.append(f"room topic holds {fold.version} events, PostgreSQL {len(stored)}")
    # A Space's version is its own stream's: events on its listener shards (ADR 0012) leave it.
    own = sum(is_space_stream(stream, space_id) for stream, _, _ in stored)
    space, people = await room_view(room, space_id)
    if space.version != own:
        out.append(f"GetSpace at version {space.version}, the Space's own stream at {own}")
    folded = {u: p.role for u, p in fold.participants.items()}
    if people != folded:
        out.append(f"ListParticipants {sorted(people.items())} != fold {sorted(folded.items())}")
    if sorted(space.speaker_user_ids) != sorted(fold.speakers):
        out.append(f"speakers {sorted(space.speaker_user_ids)} != fold {sorted(fold.speakers)}")
    # The directory (a durable view, resumed after restarts and database outages) lists it as folded.
    listed = await RoomClient(room, space.host_user_id).ListSpaces(
        host_user_id=space.host_user_id, page_size=100
    )
    entry = next((s for s in listed.spaces if s.space_id == space_id), None)
    if entry is None or entry.version != own:
        out.append(
            f"ListSpaces has it at version {entry.version if entry else None}, its own stream at {own}"
        )
    elif (entry.participant_count, entry.listener_count) != (len(fold.participants), fold.listener_count):
        out.append(
            f"ListSpaces counts {entry.participant_count}/{entry.listener_count}, the log "
            f"{len(fold.participants)}/{fold.listener_count}"
        )
    if moderation is not None:
        stored_m = await stored_events(database_url, "moderation", space_id)
        on_topic = await moderation_log_versions(bootstrap, space_id)
        if on_topic != len(stored_m):
            out.append(f"moderation topic holds {on_topic} versions, PostgreSQL {len(stored_m)}")
        observer = ModerationClient(moderation, f"{load.prefix if load else 'f'}-host")
        actions, token = [], ""
        while True:  # every page: a long load writes more than one page's worth
            page = await observer.GetModerationLog(space_id=space_id, page_size=1000, page_token=token)
            actions.extend(page.actions)
            if not (token := page.next_page_token):
                break
        stored_types = [short(e.event_type) for _, _, e in stored_m]
        if sorted(short(a.event_type) for a in actions) != sorted(stored_types):
            out.append(f"moderation log {len(actions)} actions != {len(stored_m)} stored events")
    if presence is not None and load is not None:
        reply = await PresenceClient(presence, "gateway-faults").GetSpacePresence(
            space_id=space_id, page_size=1000
        )
        present = {u.user_id for u in reply.users}
        if present != load.joined:
            out.append(f"presence {sorted(present)} != heartbeating {sorted(load.joined)}")
    return out


def record(
    scenario: str, verdict: Verdict, convergence: Convergence, history: History | None = None, **extra
) -> dict:
    line = {
        "scenario": scenario,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "acknowledged": verdict.acknowledged,
        "rejected": verdict.rejected,
        "unanswered": verdict.pending,
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "noop_leaves": verdict.noops,
        "converge_seconds": round(convergence.seconds, 2),
        "rejections": dict(history.rejections()) if history else {},
        **extra,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
    return line


async def pause(service, seconds: float) -> None:
    """SIGSTOP the service's process for `seconds` (a long GC pause, a frozen VM), then SIGCONT."""
    await freeze(service.process.process.pid, seconds)


async def freeze(pid: int, seconds: float) -> None:
    """SIGSTOP process `pid` for `seconds`, then SIGCONT."""
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def assert_sound(verdict: Verdict, convergence: Convergence) -> None:
    assert verdict.acknowledged > 0, "the load acknowledged nothing"
    assert not verdict.lost, f"acknowledged but not in the log: {verdict.lost}"
    assert not verdict.duplicated, f"applied more than once: {verdict.duplicated}"
    assert not verdict.rejected_with_effect, f"rejected yet applied: {verdict.rejected_with_effect}"
    assert not verdict.gaps, f"stream versions not 1..n: {verdict.gaps}"
    assert not convergence.mismatches, f"views did not converge: {convergence.mismatches}"
