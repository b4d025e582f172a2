"""A Space's room history as it would be with listener shards (ADR 0012), for consumer tests.

`on_streams` labels each event with the stream it would be on, and that stream's version:
every ParticipantJoined and ParticipantLeft goes to the shard of its user, everything else to
the Space's own stream. Kept in the room's order, that is one order a consumer may see; `merged`
gives others, each stream still in its own order, as a partition holding several streams of one
Space may deliver them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from google.protobuf.message import Message

from libs.domain.streams import SHARD_MARK, listener_shard_stream, shard_of, space_stream
from podium.room.v1 import room_events_pb2 as ev

SHARDED = (ev.ParticipantJoined, ev.ParticipantLeft)


class OnStream(NamedTuple):
    stream_id: str
    version: int
    payload: Message
    at: Any = None


def on_streams(space_id: str, events: Sequence[Message | tuple[Message, Any]], shards: int) -> list[OnStream]:
    """`events` (payloads, or (payload, time) pairs) in the given order, each on its stream."""
    versions: dict[str, int] = {}
    out = []
    for item in events:
        payload, at = item if isinstance(item, tuple) else (item, None)
        if isinstance(payload, SHARDED):
            stream = listener_shard_stream(space_id, shard_of(payload.user_id, shards))
        else:
            stream = space_stream(space_id)
        versions[stream] = versions.get(stream, 0) + 1
        out.append(OnStream(stream, versions[stream], payload, at))
    return out


def merged(log: Sequence[OnStream], rng: random.Random) -> list[OnStream]:
    """`log` in a random order that keeps each stream's own order, as a partition may hold it: a
    shard's events come only after the growth that made the shard (the one relay publishes in
    commit order, and a shard is written to only once its growth is committed), so shards
    interleave with the rest of the Space's stream, never with its creation and start."""
    queues: dict[str, list[OnStream]] = {}
    for item in log:
        queues.setdefault(item.stream_id, []).append(item)
    heads = {stream: 0 for stream in queues}
    own = next((item.stream_id for item in log if SHARD_MARK not in item.stream_id), None)
    # What opens the shards: the growth that made them; in a log without one, the start (joins
    # need a live Space); without either, the Space's creation.
    opening = next(
        (
            kind
            for kind in (ev.ListenerShardsGrown, ev.SpaceStarted, ev.SpaceCreated)
            if any(isinstance(item.payload, kind) for item in log)
        ),
        None,
    )
    grown = own is None or opening is None
    out = []
    while heads:
        open_ = sorted(s for s in heads if grown or s == own)
        stream = rng.choice(open_)
        item = queues[stream][heads[stream]]
        out.append(item)
        grown = grown or isinstance(item.payload, opening)
        heads[stream] += 1
        if heads[stream] == len(queues[stream]):
            del heads[stream]
    return out
