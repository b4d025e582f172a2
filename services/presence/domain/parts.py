"""A Space's presence split into parts, so one Space's heartbeats spread over partitions.

Presence keeps a Space's present users in one table value, keyed (and partitioned) by the Space
id: one replica carries all of the Space's heartbeats, about 150,000 present users at one report
per 5 s (docs/capacity.md), and its value, written whole to the changelog, grows by about 170
bytes a user until it passes the producer's 1 MB record limit. A Space whose part 0 (the value
under its own id) counts more than `users_per_part` users is split in twice as many parts
(`grown`), up to `max_parts`, and says so (`PresenceSplit`). Its users are split by user id (CRC-32, the same in every process and
release): part 0 keeps the Space id as its key, part k is keyed `<space>/p<k>` and lands wherever
murmur2 puts it. Doubling from P to 2P moves a user from part k to k or k+P, never elsewhere.

Every part is a Space's presence of its own (its users, counts, time-outs, event stream), and the
Space's figures are their sums. What the room says about a user (a leave) or the Space (its end)
is forwarded to the part it concerns (`stream_processor`), and queries gather the parts
(`presence_api`). ADR 0015.
"""

from __future__ import annotations

from libs.domain.streams import shard_of

PART_MARK = "/p"


def part_of(user_id: str, parts: int) -> int:
    """The part of a Space `user_id` is in, among `parts`."""
    return shard_of(user_id, max(parts, 1))


def part_key(space_id: str, part: int, parts: int) -> str:
    """The table (and record) key of part `part` of the Space's `parts`: the Space id for part 0."""
    if not 0 <= part < max(parts, 1):
        raise ValueError(f"part {part} is not one of {parts}")
    return space_id if part == 0 else f"{space_id}{PART_MARK}{part}"


def user_key(space_id: str, user_id: str, parts: int) -> str:
    """The key `user_id`'s heartbeats in the Space go under."""
    return part_key(space_id, part_of(user_id, parts), parts)


def part_keys(space_id: str, parts: int) -> list[str]:
    """Every part's key, in part order."""
    return [part_key(space_id, part, parts) for part in range(max(parts, 1))]


def grown(parts: int, users: int, users_per_part: int, max_parts: int) -> int:
    """The Space's parts once part 0 counts `users` (present now or earlier: what its value holds):
    doubled while it counts more than `users_per_part` (users spread evenly over parts, so part 0
    speaks for all), up to `max_parts`; never fewer."""
    parts = max(parts, 1)
    while users > users_per_part and parts * 2 <= max_parts:
        parts *= 2
        users //= 2
    return parts


def events_stream(key: str) -> str:
    """The presence event stream of a part (part 0's is the Space's own): versions count per part,
    since each part numbers the events it decides by itself."""
    return f"presence-{key}"
