"""Presence's stream processor, on faust: heartbeats in, presence events out.

One faust app per process. Its single agent reads `podium.presence.heartbeats.v1`
(keyed by Space id) and keeps one table, `presence-by-space`, keyed the same
way, so the table is co-partitioned with its source and survives restarts
through its changelog. Four kinds of record arrive:

- a gateway's heartbeat batch for one Space: joins and reconnects;
- a gateway's pulse (a report with nothing for this partition): evidence only;
- a gateway loss, sent to every partition: that gateway's users time out;
- a clock tick, sent to every partition by the timer: look for users whose
  heartbeats stopped. It runs inside the stream (faust tables can only be
  written from a stream), so it is ordered with the heartbeats of its partition.

Time-outs are decided on evidence (`domain/evidence.py`): the gateway records'
own times, per partition, never the tick's or the wall clock. While presence is
behind its input, or its input is silent, it times nobody out, and says it is
degraded (`input_health.py`).

A second agent follows the room's topic (co-partitioned: same key, same
partition count) and drops users the room says have left.

A Space that outgrows one value splits into parts (`domain/parts.py`, ADR 0015):
part 0 keeps the Space id as its key, part k is keyed `<space>/p<k>`, so one
Space's heartbeats spread over partitions and replicas. More kinds of record
serve the split, all on the heartbeat topic so each is ordered with its part's
heartbeats: a split's hand-over of users to the part they belong to now (and
of those a part heard of on an older split), part 0's notice to the other parts
that the Space split further, a heartbeat passed on to the part its users are
in now, and a room event forwarded from part 0's partition to the part it
concerns (the room's topic is not co-partitioned with the parts).

Events go to `podium.presence.events.v1` in the common envelope, keyed by
Space id, with a version per Space (or per part) kept in the same table value.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, EventEnvelope, occurred_at, unwrap, wrap
from libs.events.ids import new_id
from libs.events.topics import PRESENCE_EVENTS, PRESENCE_HEARTBEATS, ROOM_EVENTS, TopicSpec
from libs.streams.faust_app import PartitionIndex, make_faust_app, raw_topic, send_to_every_partition
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from services.presence.application.input_health import InputHealth
from services.presence.domain.evidence import (
    Evidence,
    Judgement,
    forget_gateway,
    judge,
    lagging,
    observe,
    overdue,
)
from services.presence.domain.parts import events_stream, grown, part_key, part_of, user_key
from services.presence.domain.space_presence import (
    HEARTBEATS,
    PresenceRules,
    adopt,
    already_applied,
    beat,
    drop_gateway,
    empty,
    entry_of,
    follow_room,
    forget_gone,
    forgettable,
    hand_over,
    present_user,
    split_off,
)

log = logging.getLogger(__name__)

PRODUCER = "presence"


class PresenceStreams:
    def __init__(
        self,
        settings: PodiumSettings,
        rules: PresenceRules,
        *,
        tick_seconds: float = 1.0,
        producer_batch_bytes: int = 16_384,
        advertised_address: str = "",
        standby_replicas: int = 1,
        users_per_part: int = 0,
        max_parts: int = 1,
    ):
        self.settings = settings
        self.rules = rules
        # A Space whose part 0 holds more present users than this is split further (domain/parts.py).
        self.users_per_part, self.max_parts = users_per_part, max_parts
        self.partitions = settings.topic_partitions
        self.app = make_faust_app(
            "podium-presence",
            settings,
            producer_batch_bytes=producer_batch_bytes,
            canonical_url=f"http://{advertised_address}" if advertised_address else None,
            standby_replicas=standby_replicas,
        )
        self.heartbeats = self._topic(PRESENCE_HEARTBEATS, retention=PRESENCE_HEARTBEATS.retention_ms / 1000)
        self.table = self.app.Table(
            "presence-by-space",
            default=None,
            partitions=self.partitions,
            key_type=str,
            help="Each Space's present users, recent leavers, counts and event version.",
        )
        self.room_events = self._topic(ROOM_EVENTS)
        self.app.agent(self.room_events, name="follow-room-leaves")(self._follow_room)
        self.processed = 0
        self.forgotten = 0  # ended Spaces dropped from the table
        self.index = PartitionIndex(self.partitions)
        self.evidence: dict[int, Evidence] = {}
        self.health = InputHealth(stalled_after=max(rules.max_lag_seconds, 3 * tick_seconds))
        self.app.agent(self.heartbeats, name="track-presence")(self._track)
        self.app.timer(tick_seconds, name="presence-clock")(self._tick)

    def _topic(self, spec: TopicSpec, **options):
        return raw_topic(self.app, spec, self.partitions, **options)

    async def _track(self, stream):
        """Applies heartbeats, pulses, gateway losses and clock ticks to the presence table."""
        async for event in stream.events():
            signal = pt.HeartbeatBatch.FromString(event.value)
            # When the record was written, not when it is read: a backlog delays a time-out but
            # never causes one.
            at = event.message.timestamp or time.time()
            partition, offset = event.message.partition, event.message.offset
            evidence = self.evidence.get(partition)
            if evidence is None:
                evidence = self.evidence[partition] = Evidence()
            if signal.tick:
                await self._look_for_time_outs(partition, evidence, at, offset)
            elif signal.room_event:
                self._room_event_for_part(signal, offset)
            elif signal.handed_over or signal.unique_user_ids or signal.split:
                await self._take_over(signal, offset, at)
            elif signal.gateway_disconnected:
                observe(evidence, signal.gateway_id, at, self.rules)
                forget_gateway(evidence, signal.gateway_id)
                for key in self.index.keys_on(self.table.keys(), partition):
                    state = self.table[key]
                    if already_applied(state, HEARTBEATS, offset):
                        continue
                    produced = drop_gateway(state, signal.gateway_id, at)
                    if produced:
                        await self._publish(key, state, produced)
                        self._persist(key, state, at)
            elif signal.split_from:
                await self._split_notice(signal, offset, at)
            elif signal.space_id:
                observe(evidence, signal.gateway_id, at, self.rules)
                for each_part in _per_part(signal):
                    await self._beat(each_part, at, offset)
            elif signal.gateway_id:
                observe(evidence, signal.gateway_id, at, self.rules)  # a pulse
            self.processed += 1

    async def _beat(self, signal: pt.HeartbeatBatch, at: float, offset: int) -> None:
        """A gateway's heartbeat for users of one part of a Space (the Space's one value, not split)."""
        space_id = signal.space_id
        key = part_key(space_id, signal.part, signal.parts)
        state = self.table.get(key)
        if state is None:  # made by a split, maybe heard of before the split's hand-over came
            state = _new_part(space_id, signal.part, signal.parts, awaiting=True)
        if already_applied(state, HEARTBEATS, offset) or "ended_at" in state:
            return  # applied before, or late for a Space that has ended
        produced: list = []
        parts, written_on = state.get("parts", 1), max(signal.parts, 1)
        if written_on > parts:  # the Space was split further: this part keeps only its own
            await self._grow_to(key, signal.part, state, written_on, at)
            parts = state["parts"]
        users = list(signal.user_ids)
        # A heartbeat passed on from another part counts from when its gateway's record was written.
        seen_at = signal.sent_at.ToNanoseconds() / 1e9 if signal.HasField("sent_at") else at
        if written_on < parts:  # written on an older split: users of other parts go there now
            users = await self._reroute(signal, key, parts, users, seen_at)
            if at - state.get("announced_at", 0) > 1.0:  # the writer has not heard: say it again
                state["announced_at"] = at
                produced.append(pev.PresenceSplit(space_id=space_id, parts=parts))
        produced[:0] = self._announceable(state, beat(state, signal.gateway_id, users, seen_at, self.rules))
        if key == space_id:  # part 0 decides when the Space splits further
            # Counted by the users it counts (everyone ever present: the value keeps them all).
            more = grown(parts, len(state["unique"]), self.users_per_part, self.max_parts)
            if more > parts:
                parts = await self._split(key, 0, state, parts, more, at, notify=range(1, parts))
                produced.append(pev.PresenceSplit(space_id=space_id, parts=parts))
                log.info("presence of %s split in %d parts", space_id, parts)
        await self._publish(key, state, produced)
        if produced or at - state.get("persisted_at", 0) > self.rules.timeout_seconds / 3:
            self._persist(key, state, at)
        # Otherwise only last-seen times moved: the value is updated in place in memory, and
        # written to the changelog at most every third of the timeout, not on every beat.

    async def _split(
        self, key: str, own: int, state: dict, before: int, parts: int, at: float, notify=(), fresh=None
    ) -> int:
        """The Space, in `before` parts, is now in `parts`: the users of this value (part `own`) whose
        part is another now are handed over there (before anyone reports them there, mostly: the
        split is announced after), and the parts numbered `notify` are told, so they split theirs
        too."""
        space_id = state["space_id"]
        state["parts"] = parts
        moved = split_off(state, key, lambda user: user_key(space_id, user, parts))
        # This part's users go to the parts numbered like it modulo the count before: each gets
        # one hand-over, empty or not, so it knows it has everything it will be handed.
        for part in range(own + before, parts, before):
            there = part_key(space_id, part, parts)
            entries, unique = moved.get(there, ([], []))
            await self._send(
                there,
                pt.HeartbeatBatch(
                    space_id=space_id,
                    part=part,
                    parts=parts,
                    handed_over=[present_user(user, entry) for user, entry in entries],
                    unique_user_ids=unique,
                    split=True,
                    unannounced_user_ids=[user for user, _ in entries if user in (fresh or {})],
                ),
            )
        for part in notify:
            notice = pt.HeartbeatBatch(space_id=space_id, part=part, parts=parts, split_from=before)
            await self._send(part_key(space_id, part, parts), notice)
        self._persist(key, state, at)
        return parts

    async def _reroute(
        self, signal: pt.HeartbeatBatch, key: str, parts: int, users: list[str], seen_at: float
    ):
        """Users of a heartbeat written on an older split that belong to another part now: their
        heartbeat goes there, still dated `seen_at`, when the gateway's record was written. The rest
        stay."""
        staying, elsewhere = [], defaultdict(list)
        for user in users:
            there = user_key(signal.space_id, user, parts)
            (staying if there == key else elsewhere[there]).append(user)
        for there, moved in elsewhere.items():
            record = pt.HeartbeatBatch(
                gateway_id=signal.gateway_id,
                space_id=signal.space_id,
                user_ids=moved,
                part=part_of(moved[0], parts),
                parts=parts,
            )
            record.sent_at.FromNanoseconds(int(seen_at * 1e9))
            await self._send(there, record)
        return staying

    async def _send(self, key: str, record: pt.HeartbeatBatch) -> None:
        # The faust producer's client, as in `_publish`: flushed before the offsets of what caused
        # the record are committed, so it is never lost (it may come twice: the receiving part's
        # positions take it once).
        await self.app.producer.send(
            PRESENCE_HEARTBEATS.name, key.encode(), record.SerializeToString(), None, None, None
        )

    async def _look_for_time_outs(self, partition: int, evidence: Evidence, tick_at: float, offset: int):
        """A tick: forgets ended Spaces, then times out the users the evidence shows gone, if it may."""
        spaces = {}  # by table key: a Space, or a part of one
        for key in self.index.keys_on(self.table.keys(), partition):
            state = self.table[key]
            if forgettable(state, tick_at, self.rules):
                del self.table[key]  # a tombstone: recovery does not bring it back
                self.index.forget(key)
                self.forgotten += 1
                continue
            forget_gone(state, tick_at, self.rules)
            # A value that already reflects this tick (delivered again after a crash) is left alone.
            if (state["present"] or state.get("held")) and state.get(HEARTBEATS, -1) < offset:
                spaces[key] = state
        reason = lagging(evidence, tick_at, time.time(), bool(spaces), self.rules)
        self.health.checked(partition, reason)
        if reason is not None:
            return
        await self._hand_over_moved(spaces, evidence, tick_at)
        judgement = judge(spaces, evidence, self.rules)
        self._log_brake(partition, judgement)
        for key in judgement.changed:
            state = spaces[key]
            already_applied(state, HEARTBEATS, offset)  # marks it
            await self._publish(key, state, judgement.events.get(key, []))
            self._persist(key, state, tick_at)

    def _log_brake(self, partition: int, judgement: Judgement) -> None:
        if judgement.held:
            log.warning(
                "presence brake: %d time-outs in %d Spaces of partition %d held for %.1f s, too many "
                "at once (e.g. %s)",
                sum(len(users) for users in judgement.held.values()),
                len(judgement.held),
                partition,
                self.rules.brake_hold_seconds,
                {space: users[:5] for space, users in list(judgement.held.items())[:3]},
            )
        if judgement.mass:
            log.warning(
                "presence brake: %d held time-outs on partition %d still due after the hold: they go, "
                "marked mass_time_out",
                judgement.mass,
                partition,
            )

    async def _follow_room(self, stream):
        """Drops users the room says have left, and everyone when a Space ends.

        The room topic is keyed by Space id with the same partition count, so it is
        co-partitioned with the heartbeats and may write the same table: a Space's value, not
        split, is changed here. A split Space's parts are on other partitions: the events they
        need are forwarded to them through the heartbeat topic.
        """
        async for event in stream.events():
            try:
                envelope = EventEnvelope.FromString(event.value)
                payload = unwrap(envelope)
            except Exception:  # not ours to dead-letter: the room's own consumers do that
                continue
            # Part 0 (a Space not split: the whole of it), on this partition, knows the parts.
            state = self.table.get(envelope.space_id)
            if state is None:
                continue
            parts = state.get("parts", 1)
            if parts > 1:
                await self._forward_to_parts(envelope, payload, event.value, parts)
            at = occurred_at(envelope).timestamp()
            if follow_room(state, envelope.stream_id, envelope.stream_version, payload, at):
                self._persist(envelope.space_id, state, at)

    async def _forward_to_parts(self, envelope: EventEnvelope, payload, raw: bytes, parts: int) -> None:
        """A leave to the leaver's part, a Space's end to every part (part 0 takes either here)."""
        space_id = envelope.space_id
        if isinstance(payload, rev.SpaceEnded):
            to = range(1, parts)
        elif isinstance(payload, rev.ParticipantLeft):
            to = [part for part in [part_of(payload.user_id, parts)] if part != 0]
        else:
            return
        for part in to:
            record = pt.HeartbeatBatch(space_id=space_id, part=part, parts=parts, room_event=raw)
            await self._send(part_key(space_id, part, parts), record)

    def _room_event_for_part(self, signal: pt.HeartbeatBatch, offset: int) -> None:
        """A room event forwarded to one part of a split Space (`_forward_to_parts`)."""
        key = part_key(signal.space_id, signal.part, signal.parts)
        state = self.table.get(key)
        if state is None:
            return  # nobody of the part ever reported: nothing to drop
        envelope = EventEnvelope.FromString(signal.room_event)
        at = occurred_at(envelope).timestamp()
        if follow_room(state, envelope.stream_id, envelope.stream_version, unwrap(envelope), at):
            self._persist(key, state, at)

    async def _hand_over_moved(self, spaces: dict[str, dict], evidence: Evidence, now: float) -> None:
        """Users about to time out under a key they no longer belong to (reported to their new part
        since the Space split further, while a report on the older split put them here again) are
        handed over to that part instead, which times them out only if it has not heard of them
        either."""
        for key, state in spaces.items():
            if state.get("parts", 1) > 1 and await self._hand_on(
                key, state, overdue(state, evidence, self.rules)
            ):
                self._persist(key, state, now)

    async def _take_over(self, signal: pt.HeartbeatBatch, offset: int, at: float) -> None:
        """Users another part handed over (`_split`, `_hand_over_moved`)."""
        key = part_key(signal.space_id, signal.part, signal.parts)
        state = self.table.get(key)
        if state is None:
            state = _new_part(signal.space_id, signal.part, signal.parts, awaiting=not signal.split)
        if already_applied(state, HEARTBEATS, offset) or "ended_at" in state:
            return
        entries = [(u.user_id, entry_of(u)) for u in signal.handed_over]
        gateways = {u.user_id: u.gateway_id for u in signal.handed_over}
        fresh = {u: gateways[u] for u in signal.unannounced_user_ids if u in gateways}  # nobody said them
        if signal.split and "unannounced" in state:
            # The hand-over that makes this part, after reports on the new split: everyone heard
            # of and not in it is new to the Space; then any split heard of meanwhile is carried
            # out, and users of other parts (routed here on an older split) go to theirs.
            adopt(state, entries, signal.unique_user_ids)
            handed = set(gateways)
            held = state.pop("unannounced")
            fresh |= {u: g for u, g in held.items() if u not in handed and u in state["present"]}
            heard_of, state["parts"] = state["parts"], signal.parts
            await self._grow_to(key, signal.part, state, heard_of, at, fresh)
            await self._hand_on(key, state, list(state["present"]), fresh)
        else:
            before = set(state["present"])
            await self._grow_to(key, signal.part, state, signal.parts, at)
            adopt(state, entries, signal.unique_user_ids)
            if "unannounced" in state:  # still waiting for its own: they wait with it
                state["unannounced"].update(fresh)
                fresh = {}
            fresh = {u: g for u, g in fresh.items() if u not in before}
        produced = [
            pev.ParticipantConnected(
                space_id=signal.space_id, user_id=user, gateway_id=gateway, kind=pev.CONNECT_KIND_NEW
            )
            for user, gateway in fresh.items()
            if user in state["present"]
        ]
        await self._publish(key, state, produced)
        self._persist(key, state, at)

    async def _hand_on(self, key: str, state: dict, users, fresh=()) -> bool:
        """Those of `users` present here who belong to another part under the count this part knows
        (reports on an older split routed them here) go to that part, marked if nobody announced
        them yet (`fresh`). Whether any went."""
        space_id, parts = state["space_id"], state.get("parts", 1)
        strays = defaultdict(list)
        for user in users:
            if (there := user_key(space_id, user, parts)) != key:
                strays[there].append(user)
        for there, moved in strays.items():
            entries = hand_over(state, moved)
            await self._send(
                there,
                pt.HeartbeatBatch(
                    space_id=space_id,
                    part=part_of(moved[0], parts),
                    parts=parts,
                    handed_over=[present_user(user, entry) for user, entry in entries],
                    unannounced_user_ids=[user for user in moved if user in fresh],
                ),
            )
        return bool(strays)

    async def _split_notice(self, signal: pt.HeartbeatBatch, offset: int, at: float) -> None:
        """Part 0 split the Space from `split_from` parts: this part, one of those, splits its own."""
        key = part_key(signal.space_id, signal.part, signal.parts)
        state = self.table.get(key)
        if state is None:  # its own hand-over, from an earlier split, is still on its way
            state = _new_part(signal.space_id, signal.part, signal.split_from, awaiting=True)
        if already_applied(state, HEARTBEATS, offset) or "ended_at" in state:
            return
        await self._grow_to(key, signal.part, state, signal.parts, at)
        self._persist(key, state, at)

    async def _grow_to(self, key: str, own: int, state: dict, parts: int, at: float, fresh=None) -> None:
        """This part (`own`) learnt the Space is in `parts` parts: it splits its own users, unless its
        own hand-over has not come yet (then it splits once it has, `_take_over`: what it would hand
        on may still be on its way to it)."""
        before = state.get("parts", 1)
        if parts <= before:
            return
        if "unannounced" in state:
            state["parts"] = parts
            return
        await self._split(key, own, state, before, parts, at, fresh=fresh or {})

    @staticmethod
    def _announceable(state: dict, events: list) -> list:
        """`events` less the connections a part made by a split holds back until its hand-over."""
        held = state.get("unannounced")
        if held is None:
            return events
        kept = []
        for event in events:
            if isinstance(event, pev.ParticipantConnected):
                held[event.user_id] = event.gateway_id
            else:
                kept.append(event)
        return kept

    def _persist(self, key: str, state: dict, now: float) -> None:
        state["persisted_at"] = now
        self.table[key] = state

    async def _publish(self, key: str, state: dict, events: list) -> None:
        if not events:
            return
        now = datetime.now(UTC)
        causation = Causation(PRODUCER, new_id(), "presence-heartbeats")
        for payload in events:
            state["version"] += 1
            envelope = wrap(
                payload,
                producer=PRODUCER,
                stream_id=events_stream(key),
                version=state["version"],
                space_id=state["space_id"],
                occurred_at=now,
                causation=causation,
            )
            # Straight to the Kafka client under faust's producer: faust's own `Topic.send` machinery
            # cost more than the rest of a join. The record is in the client's buffer when this
            # returns, and faust flushes that buffer before it commits the heartbeat offsets.
            await self.app.producer.send(
                PRESENCE_EVENTS.name,
                state["space_id"].encode(),
                envelope.SerializeToString(),
                None,
                None,
                None,
            )

    async def _tick(self) -> None:
        """Every second, a tick to each partition, so time-outs are looked for inside the stream; and
        a look at whether every partition's ticks are being read."""
        self.health.review(self._assigned())
        await send_to_every_partition(
            self.heartbeats, pt.HeartbeatBatch(tick=True).SerializeToString(), self.partitions
        )

    def _assigned(self) -> set[int] | None:
        """The heartbeat partitions this replica reads now (None: not known yet)."""
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # not started, or between assignments
            return None
        return {tp.partition for tp in assignment if tp.topic == PRESENCE_HEARTBEATS.name}

    def space(self, key: str) -> dict | None:
        """The value under `key`: a Space's presence, or a part of it (`domain/parts.py`)."""
        return self.table.get(key)


def _new_part(space_id: str, part: int, parts: int, *, awaiting: bool) -> dict:
    """A value for part `part` of the Space, not held here yet, split in `parts` as far as it knows.
    `awaiting`: made by a split whose hand-over has not come, so it holds back its connections
    (`_announceable`) until it does; part 0 (the Space not split) never waits."""
    state = empty(space_id)
    if parts > 1:
        state["parts"] = parts
        if awaiting and part:
            state["unannounced"] = {}
    return state


def _per_part(signal: pt.HeartbeatBatch) -> list[pt.HeartbeatBatch]:
    """A heartbeat for users of one part; one for several parts sharing a partition, as one a part."""
    if not signal.several_parts:
        return [signal]
    users: dict[int, list[str]] = defaultdict(list)
    for user in signal.user_ids:
        users[part_of(user, signal.parts)].append(user)
    each = []
    for part, of_part in users.items():
        one = pt.HeartbeatBatch(
            gateway_id=signal.gateway_id,
            space_id=signal.space_id,
            user_ids=of_part,
            part=part,
            parts=signal.parts,
        )
        if signal.HasField("sent_at"):
            one.sent_at.CopyFrom(signal.sent_at)
        each.append(one)
    return each
