"""The streams a Space's room events are on, by name.

Each Space has its own stream in the room's event store, `space-<id>`: its lifecycle, policy,
invitations, voices and queue to speak, decided strictly in order. Listener shards (ADR 0012)
add streams `space-<id>/l<k>` that hold only joins and leaves of listeners, so a Space's room
events may come on more than one stream. Every record stays keyed by the Space id, so one
Space's events, whatever their stream, share a partition (and presence's heartbeats, which are
co-partitioned with them). Order holds per stream, not per Space: consumers track the version
they have applied per stream. Read-your-writes: `room_version` names the Space's own stream;
`room_token` (`room_token`, `token_streams`) names it and the listener shards a join or leave was
recorded on.
"""

from __future__ import annotations

import zlib

SPACE_STREAM_PREFIX = "space-"
SHARD_MARK = "/l"


def space_stream(space_id: str) -> str:
    """The Space's own stream: everything but listeners' joins and leaves once it has shards."""
    return f"{SPACE_STREAM_PREFIX}{space_id}"


def listener_shard_stream(space_id: str, shard: int) -> str:
    """Listener shard `shard` of the Space: joins and leaves of the listeners it holds."""
    if shard < 0:
        raise ValueError(f"a shard number is not negative, got {shard}")
    return f"{SPACE_STREAM_PREFIX}{space_id}{SHARD_MARK}{shard}"


def shard_number(stream_id: str) -> int:
    """The shard a listener shard stream (`listener_shard_stream`) is."""
    return int(stream_id.rpartition(SHARD_MARK)[2])


def is_space_stream(stream_id: str, space_id: str) -> bool:
    """`stream_id` is the Space's own stream (not one of its listener shards)."""
    return len(stream_id) == len(SPACE_STREAM_PREFIX) + len(space_id) and stream_id == space_stream(space_id)


def shard_of(user_id: str, shards: int) -> int:
    """The listener shard of `user_id` among `shards`: the same in every process and release
    (CRC-32 of the UTF-8 id, not Python's salted `hash`)."""
    if shards < 1:
        raise ValueError(f"a Space has at least one listener shard, got {shards}")
    return zlib.crc32(user_id.encode()) % shards


def room_token(space_version: int, shards: tuple[tuple[int, int], ...] = ()) -> str:
    """A read-your-writes token: the Space's own stream at `space_version`, and each listener shard
    `(shard, version)` an answer rests on. "12", or "12;l3=40" after a join on shard 3. Clients
    pass it back as is; only `token_streams` reads it."""
    return ";".join([str(space_version), *(f"l{shard}={version}" for shard, version in shards)])


def token_streams(space_id: str, token: str) -> list[tuple[str, int]]:
    """The (stream, version) pairs `token` (from `room_token`) asks a view to have reached; raises
    ValueError on anything `room_token` does not make."""
    own, *shards = token.split(";")
    if len(token) > 200 or len(shards) > 8 or not _number(own):  # a leave may span a shard per count
        raise ValueError("not a room token")
    wanted = [(space_stream(space_id), int(own))]
    for part in shards:
        shard, _, version = part.removeprefix("l").partition("=")
        if not (part.startswith("l") and _number(shard) and _number(version)):
            raise ValueError("not a room token")
        wanted.append((listener_shard_stream(space_id, int(shard)), int(version)))
    return wanted


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()
