"""Analytics' stream processor, on faust: the event log in, derived figures out.

Agents read the room, media and replay topics (all keyed by Space id, with the
same partition count, so co-partitioned) and one internal clock topic. They
keep two tables: `space-stats` (a Space's running figures, keyed by Space id)
and `space-members` (each user's state in a Space, keyed `space|user`, written
from the Space's partition). Both survive restarts through their changelogs.

Out go `podium.analytics.space_stats.v1` (SpaceStats: on every closed window
while the Space is live, on its end, and again whenever a late talking or
replay event changes an ended Space's figures) and
`podium.analytics.listeners_per_minute.v1` (ListenersInWindow). Windows close
when a room event passes their end; clock ticks (records in the log) only make
ended Spaces leave the tables once they are old enough. The figures are the pure
fold of `libs.analytics.space_figures` (the one `podium report` uses too), so
they depend on event time only: a rebuild from the log publishes the same values.
"""

from __future__ import annotations

import logging
import time

from faust.types import TP

from libs.analytics.space_figures import (
    apply_replay,
    apply_room,
    apply_talking,
    close_windows,
    empty,
    is_live,
    room_version,
    snapshot,
)
from libs.config.settings import PodiumSettings
from libs.domain.streams import space_stream
from libs.events.envelope import EventEnvelope, occurred_at, unwrap
from libs.events.log_loss import LogLoss
from libs.events.topics import (
    ANALYTICS_LISTENERS_PER_MINUTE,
    ANALYTICS_SPACE_STATS,
    ANALYTICS_TICKS,
    MEDIA_EVENTS,
    REPLAY_EVENTS,
    ROOM_EVENTS,
    TopicSpec,
)
from libs.projection.ordering import Stream, StreamGate, Verdict
from libs.streams.faust_app import (
    PartitionIndex,
    make_faust_app,
    raw_topic,
    send_to_every_partition,
)
from podium.analytics.v1 import analytics_stats_pb2 as an
from podium.room.v1 import room_events_pb2 as rev

log = logging.getLogger(__name__)


class AnalyticsStreams:
    def __init__(
        self,
        settings: PodiumSettings,
        *,
        window_seconds: int = 60,
        lateness_seconds: float = 5.0,
        tick_seconds: float = 5.0,
        producer_batch_bytes: int = 16_384,
        app_id: str = "podium-analytics",
        hole_seconds: float = 30.0,
        forget_ended_after_seconds: float = 3600.0,
        log_loss: LogLoss | None = None,
    ):
        self.window_seconds = window_seconds
        self.lateness_seconds = lateness_seconds
        self.partitions = settings.topic_partitions
        self.index = PartitionIndex(self.partitions)
        self.app = make_faust_app(app_id, settings, producer_batch_bytes=producer_batch_bytes)
        self.stats = self.app.Table("space-stats", default=None, partitions=self.partitions, key_type=str)
        self.members = self.app.Table("space-members", default=None, partitions=self.partitions, key_type=str)
        self.out_stats = self._topic(ANALYTICS_SPACE_STATS)
        self.out_windows = self._topic(ANALYTICS_LISTENERS_PER_MINUTE)
        self.ticks = self._topic(ANALYTICS_TICKS, retention=ANALYTICS_TICKS.retention_ms / 1000)
        self.app.agent(self._topic(ROOM_EVENTS), name="fold-room")(self._fold_room)
        self.app.agent(self._topic(MEDIA_EVENTS), name="fold-talking")(self._fold_talking)
        self.app.agent(self._topic(REPLAY_EVENTS), name="fold-replay")(self._fold_replay)
        self.app.agent(self.ticks, name="close-windows")(self._close_windows)
        self.app.timer(tick_seconds, name="analytics-clock")(self._tick)
        self.published = 0
        # An ended Space's values stay this long for late talking and replay events (its figures are
        # published again with them), then leave both tables with a tombstone each, so memory and
        # the changelogs' recovery follow live Spaces, not history.
        self.forget_ended_after_seconds = forget_ended_after_seconds
        self.forgotten = 0
        self.hole_seconds = hole_seconds
        self.log_loss = log_loss or LogLoss()
        self.gate: StreamGate = StreamGate()  # room events held behind a hole, per room stream
        self._held_since: dict[Stream, tuple[str, float]] = {}  # a held stream -> its Space, since when
        self._room_stream = None
        self.app.on_partitions_revoked.connect(self._forget_held)

    def _topic(self, spec: TopicSpec, **options):
        return raw_topic(self.app, spec, self.partitions, **options)

    async def _fold_room(self, stream):
        """Folds each room stream's events in version order: a Space's own stream and each of its
        listener shards, which interleave on the partition, so a hole in one holds back none of the
        others. An event after a hole is held until the log fills the hole (a producer's retry can
        land a batch after the next one). A hole still open after `hole_seconds` means the log lost
        those events: it is reported as a lost log (`libs.events.log_loss`) and the partition is no
        longer read, never folded past. The clock ticks look.

        Acks are manual: an event is acked once it is folded into the table, so a held event is
        not committed past. A crash or a rebalance while holding gets the held events delivered
        again, after the table as it stood, instead of losing them."""
        self._room_stream = stream = stream.noack()
        async for event, envelope, payload in self._decoded(stream):
            space_id = envelope.space_id
            if not space_id:
                await stream.ack(event)
                continue
            stats = self.stats.get(space_id) or empty(space_id, self.window_seconds)
            key = ("room", envelope.stream_id or space_stream(space_id))
            holding = key in self._held_since
            applied = room_version(stats, envelope.stream_id)
            if not holding and envelope.stream_version <= applied + 1:
                await self._fold_room_event(stats, envelope, payload)  # the next one, or a duplicate
                await stream.ack(event)
                continue
            # A hole: the gate holds what comes after it; the table says what was folded before it.
            if not holding:
                log.info(
                    "room stream %s: version %d at %s after %d folded; holding until the log fills the hole",
                    key[1], envelope.stream_version, event.message.tp, applied,
                )  # fmt: skip
                self.gate.start_at(key, applied)
            verdict, ready = self.gate.offer(key, envelope.stream_version, (event, envelope, payload))
            if verdict is Verdict.HELD:
                self._held_since.setdefault(key, (space_id, time.monotonic()))
                continue
            if verdict is Verdict.DUPLICATE:
                await stream.ack(event)
            await self._fold_held(stats, ready)
            if key not in self.gate.held_streams():  # the hole is filled
                del self._held_since[key]
                self.gate.forget(key)

    async def _fold_held(self, stats: dict, ready: list) -> None:
        for event, envelope, payload in ready:
            await self._fold_room_event(stats, envelope, payload)
            await self._room_stream.ack(event)

    def _forget_held(self, app=None, revoked=None, **_) -> None:
        """On a rebalance: held events were never acked, so they come again from the committed
        offsets; what the gate holds is dropped (and the clock waits afresh)."""
        for key in self._held_since:
            self.gate.forget(key)
        self._held_since.clear()

    async def _fold_room_event(self, stats: dict, envelope: EventEnvelope, payload) -> None:
        space_id = envelope.space_id
        at = occurred_at(envelope).timestamp()
        # Windows this event passes close first, so their figures are as of their end.
        await self._publish_windows(stats, close_windows(stats, at) if is_live(stats) else [])
        closed = apply_room(stats, self.members, payload, at, envelope.stream_version, envelope.stream_id)
        self.stats[space_id] = stats
        await self._publish_windows(stats, closed)
        if isinstance(payload, rev.SpaceEnded):
            log.info(
                "space %s ended at version %d: %d speak requests",
                space_id, envelope.stream_version, stats["requests"],
            )  # fmt: skip
            await self._publish_stats(snapshot(stats, at, final=True))

    async def _fold_talking(self, stream):
        async for envelope, payload in self._envelopes(stream):
            stats = self.stats.get(envelope.space_id)
            if stats is not None and apply_talking(
                stats, envelope.stream_id, envelope.stream_version, payload
            ):
                self.stats[envelope.space_id] = stats
                await self._republish_if_ended(stats)

    async def _fold_replay(self, stream):
        async for envelope, payload in self._envelopes(stream):
            stats = self.stats.get(envelope.space_id)
            if stats is not None and apply_replay(
                stats, envelope.stream_id, envelope.stream_version, payload
            ):
                self.stats[envelope.space_id] = stats
                await self._republish_if_ended(stats)

    async def _close_windows(self, stream):
        """A tick closes the windows of this partition's live Spaces that ended before it, less
        the allowed lateness, and reports holes that did not fill as a lost log."""
        async for event in stream.events():
            self._report_old_holes(event.message.partition)
            now = event.message.timestamp or time.time()  # faust gives the record's time in seconds
            done: list[str] = []
            for space_id in self.index.keys_on(self.stats.keys(), event.message.partition):
                stats = self.stats[space_id]
                if not is_live(stats):
                    ended = stats["ended_at"]
                    if ended is not None and now - ended > self.forget_ended_after_seconds:
                        done.append(space_id)
                    continue
                # Ticks do not close windows: a tick's place among the room events differs in a
                # rebuild, so closing windows on it would break the rule that a rebuild publishes the
                # same figures (test_analytics_stream, docs/decisions/0008). Only room events do.
            if done:
                self._forget(done, event.message.partition)

    def _forget(self, space_ids: list[str], partition: int) -> None:
        """Drops ended Spaces' figures and members from the tables (tombstones in the changelogs)."""
        prefixes = tuple(f"{space_id}|" for space_id in space_ids)
        for key in [k for k in self.members.keys() if k.startswith(prefixes)]:
            del self.members[key]
        for space_id in space_ids:
            del self.stats[space_id]
            self.index.forget(space_id)
        self.forgotten += len(space_ids)
        log.info("forgot %d ended space(s) on partition %d", len(space_ids), partition)

    def _report_old_holes(self, partition: int) -> None:
        waited_enough = time.monotonic() - self.hole_seconds
        spaces = {space_id for space_id, since in self._held_since.values() if since <= waited_enough}
        old = self.index.keys_on(spaces, partition)
        if not old:
            return
        tp = TP(ROOM_EVENTS.name, partition)
        reason = f"room versions of {len(old)} Space(s) have had a hole for over {self.hole_seconds:.0f} s"
        if self.log_loss.report(self.app.conf.id, tp.topic, tp.partition, reason):
            self.app.consumer.pause_partitions([tp])

    async def _envelopes(self, stream):
        async for _event, envelope, payload in self._decoded(stream):
            yield envelope, payload

    async def _decoded(self, stream):
        """Each event with its envelope and payload; an undecodable one is acked and skipped."""
        async for event in stream.events():
            try:
                envelope = EventEnvelope.FromString(event.value)
                payload = unwrap(envelope)
            except Exception:  # the producing service's own consumers dead-letter these
                log.warning("skipping an undecodable record at %s", event.message.tp)
                if not stream.enable_acks:
                    await stream.ack(event)
                continue
            yield event, envelope, payload

    async def _publish_windows(self, stats: dict, closed: list[an.ListenersInWindow]) -> None:
        if not closed:
            return
        for window in closed:
            await self._send(self.out_windows, stats["space_id"], window)
        end = closed[-1].window_start.ToSeconds() + closed[-1].window_seconds
        if stats["ended_at"] is None or end <= stats["ended_at"]:
            await self._publish_stats(snapshot(stats, end))

    async def _republish_if_ended(self, stats: dict) -> None:
        if stats["ended_at"] is not None:
            await self._publish_stats(snapshot(stats, stats["ended_at"], final=True))

    async def _publish_stats(self, figures: an.SpaceStats) -> None:
        await self._send(self.out_stats, figures.space_id, figures)

    async def _send(self, topic, space_id: str, message) -> None:
        await topic.send(
            key=space_id.encode(),
            value=message.SerializeToString(deterministic=True),
            headers=[("podium-type", message.DESCRIPTOR.full_name.encode())],
        )
        self.published += 1

    async def _tick(self) -> None:
        await send_to_every_partition(self.ticks, an.AnalyticsTick().SerializeToString(), self.partitions)
