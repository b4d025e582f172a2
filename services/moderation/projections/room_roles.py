"""Who holds which role in each Space, as the room service's events tell it.

Moderation authorizes with this view: only hosts and co-hosts mute others or
remove people, only speakers can be muted, only participants report. It lags
the room service by the relay and consumer delay (milliseconds). The roles are
the one membership fold every service shares (`libs.domain.membership`).
"""

from __future__ import annotations

from libs.domain.membership import SpaceMembers
from libs.events.envelope import occurred_at
from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain.commands import Roles


class RoomRoles:
    name = "moderation-room-roles"
    topics = (ROOM_EVENTS,)

    def __init__(self) -> None:
        self.spaces: dict[str, SpaceMembers] = {}

    def apply(self, event: ConsumedEvent) -> None:
        space = self.spaces.get(event.envelope.space_id)
        if space is None:
            space = self.spaces[event.envelope.space_id] = SpaceMembers()
        space.apply(event.payload, occurred_at(event.envelope))

    def known(self, space_id: str) -> bool:
        space = self.spaces.get(space_id)
        return space is not None and bool(space.roster.host_user_id)

    def roles(self, space_id: str, actor: str, target: str = "") -> Roles:
        space = self.spaces.get(space_id)
        if space is None:
            return Roles(actor=rt.ROLE_UNSPECIFIED, target=rt.ROLE_UNSPECIFIED, host_user_id="")
        return Roles(
            actor=space.role_of(actor),
            target=space.role_of(target) if target else rt.ROLE_UNSPECIFIED,
            host_user_id=space.roster.host_user_id,
        )
