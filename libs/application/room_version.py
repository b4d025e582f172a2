"""Read-your-writes across services (after Zanzibar's zookies): a request may carry the
`Space.version` its caller saw in a room response (`room_version`), and a service answers it only
from views of the room that have reached that version. A refusal then never rests on a view older
than the caller's. Moderation's calls and replay's reads take it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from libs.domain.errors import FieldViolation, InvalidArgument, Unavailable
from libs.domain.reasons import Reason
from libs.projection.runner import ProjectionRunner


async def reach_room_version(
    views: Sequence[ProjectionRunner], space_id: str, room_version: int, *, wait_seconds: float, service: str
) -> None:
    """Returns once each of `views` has applied `room_version` of the Space's room stream (0: at
    once); UNAVAILABLE `VIEW_BEHIND` with a retry delay when they have not within `wait_seconds`."""
    if room_version < 0:
        raise InvalidArgument(
            "room_version must not be negative", [FieldViolation("room_version", "0 or a Space.version")]
        )
    if not room_version:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    for view in views:
        if not await view.wait_for("room", f"space-{space_id}", room_version, deadline - loop.time()):
            raise Unavailable(
                f"{service}'s view of space {space_id!r} has not yet reached version {room_version}; "
                "retry shortly",
                reason=Reason.VIEW_BEHIND,
                retry_after_seconds=0.2,
            )
