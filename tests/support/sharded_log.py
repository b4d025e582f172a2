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

from libs.domain.streams import listener_shard_stream, shard_of, space_stream
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
    """`log` in a random order that keeps each stream's own order."""
    queues: dict[str, list[OnStream]] = {}
    for item in log:
        queues.setdefault(item.stream_id, []).append(item)
    heads = {stream: 0 for stream in queues}
    out = []
    while heads:
        stream = rng.choice(sorted(heads))
        out.append(queues[stream][heads[stream]])
        heads[stream] += 1
        if heads[stream] == len(queues[stream]):
            del heads[stream]
    return out
