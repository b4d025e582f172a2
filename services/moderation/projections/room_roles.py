"""Who holds which role in each Space, as the room service's events tell it.

Moderation authorizes with this view: only hosts and co-hosts mute others or
remove people, only speakers can be muted, only participants report. It lags
the room service by the relay and consumer delay (milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain.commands import Roles


@dataclass
class SpaceRoles:
    host_user_id: str = ""
    roles: dict[str, int] = field(default_factory=dict)  # present participants only
    ended: bool = False


class RoomRoles:
    name = "moderation-room-roles"
    topics = (ROOM_EVENTS,)

    def __init__(self) -> None:
        self.spaces: dict[str, SpaceRoles] = {}

    def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        space = self.spaces.setdefault(event.envelope.space_id, SpaceRoles())
        match e:
            case rev.SpaceCreated():
                space.host_user_id = e.host_user_id
            case rev.ParticipantJoined():
                space.roles[e.user_id] = e.role or rt.ROLE_LISTENER
            case rev.ParticipantLeft():
                space.roles.pop(e.user_id, None)
            case rev.CoHostAdded():
                space.roles[e.user_id] = rt.ROLE_CO_HOST
            case rev.SpeakerAdded():
                space.roles[e.user_id] = rt.ROLE_SPEAKER
            case rev.CoHostRemoved() | rev.SpeakerRemoved():
                if e.user_id in space.roles:
                    space.roles[e.user_id] = rt.ROLE_LISTENER
            case rev.SpaceEnded():
                space.roles.clear()
                space.ended = True

    def known(self, space_id: str) -> bool:
        return space_id in self.spaces and bool(self.spaces[space_id].host_user_id)

    def roles(self, space_id: str, actor: str, target: str = "") -> Roles:
        space = self.spaces.get(space_id, SpaceRoles())
        return Roles(
            actor=space.roles.get(actor, rt.ROLE_UNSPECIFIED),
            target=space.roles.get(target, rt.ROLE_UNSPECIFIED) if target else rt.ROLE_UNSPECIFIED,
            host_user_id=space.host_user_id,
        )
