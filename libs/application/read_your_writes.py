"""Read-your-writes across services (after Zanzibar's zookies): a request may carry what its
caller saw in a room response, and a service answers it only from views of the room that have
reached that. A refusal then never rests on a view older than the caller's.

Two forms: `room_version` (`Space.version`: the Space's own stream, never a listener shard) and
`room_token` (`Space.room_token`: the own stream and the listener shard a join or leave was
recorded on, `libs.domain.streams.room_token`). Moderation's calls and replay's reads take both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from libs.domain.errors import FieldViolation, InvalidArgument, Unavailable
from libs.domain.reasons import Reason
from libs.domain.streams import space_stream, token_streams
from libs.projection.runner import ProjectionRunner


async def reach_room(
    views: Sequence[ProjectionRunner],
    space_id: str,
    *,
    room_version: int = 0,
    room_token: str = "",
    wait_seconds: float,
    service: str,
) -> None:
    """Returns once each of `views` has applied what `room_version` and `room_token` name (0 and
    "": at once); UNAVAILABLE `VIEW_BEHIND` with a retry delay when they have not within
    `wait_seconds`. INVALID_ARGUMENT for a negative version or a token the room did not make."""
    if room_version < 0:
        raise InvalidArgument(
            "room_version must not be negative", [FieldViolation("room_version", "0 or a Space.version")]
        )
    wanted = [(space_stream(space_id), room_version)] if room_version else []
    if room_token:
        try:
            wanted += token_streams(space_id, room_token)
        except ValueError:
            raise InvalidArgument(
                "room_token is not a token the room gave",
                [FieldViolation("room_token", "empty, or a Space.room_token as a room response gave it")],
            ) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    for stream, version in wanted:
        if not version:
            continue
        for view in views:
            if not await view.wait_for("room", stream, version, deadline - loop.time()):
                raise Unavailable(
                    f"{service}'s view of space {space_id!r} has not yet reached what the caller saw "
                    f"({stream} at version {version}); retry shortly",
                    reason=Reason.VIEW_BEHIND,
                    retry_after_seconds=0.2,
                )
