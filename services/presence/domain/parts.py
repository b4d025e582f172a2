"""A Space's presence split into parts, so one Space's heartbeats spread over partitions.

Presence keeps each Space's present users in one table value, keyed (and partitioned) by the
Space id: one replica carries all of a Space's heartbeats, about 150,000 present users at one
report per 5 s (docs/capacity.md). With `parts` above 1 a Space's users are split by user id
over that many values, each keyed `<space>/p<k>` and carried wherever murmur2 puts it: every
part is a Space's presence of its own (its users, counts, time-outs and event stream), and the
Space's figures are their sums. A user is always in the same part (CRC-32 of the id, the same
in every process and release), so a part never needs to hear of another's users; what the room
says about a user (a leave) or the Space (its end) is forwarded to the part it concerns
(`stream_processor`), and queries gather the parts (`presence_api`). ADR 0015.

With `parts` at 1 (the default) the key is the Space id, as it has always been.
"""

from __future__ import annotations

from libs.domain.streams import shard_of

PART_MARK = "/p"


def part_of(user_id: str, parts: int) -> int:
    """The part of a Space `user_id` is in, among `parts`."""
    return shard_of(user_id, parts)


def part_key(space_id: str, part: int, parts: int) -> str:
    """The table (and record) key of part `part` of the Space's `parts`."""
    if parts <= 1:
        return space_id
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not one of {parts}")
    return f"{space_id}{PART_MARK}{part}"


def user_key(space_id: str, user_id: str, parts: int) -> str:
    """The key `user_id`'s heartbeats in the Space go under."""
    return part_key(space_id, part_of(user_id, parts), parts)


def part_keys(space_id: str, parts: int) -> list[str]:
    """Every part's key, in part order."""
    return [part_key(space_id, part, parts) for part in range(max(parts, 1))]


def events_stream(key: str) -> str:
    """The presence event stream of a part (or of the whole Space, unsplit): versions count per part,
    since each part numbers the events it decides by itself."""
    return f"presence-{key}"
