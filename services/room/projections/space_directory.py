"""The directory of every Space, for ListSpaces and the abandoned-Space sweeper.

Rebuilt from `podium.room.events.v1` by folding the room domain's own `evolve`
over each Space's events, so the directory and the write side can never
disagree about what an event means. It lags the write side by the relay and
consumer delay (milliseconds); GetSpace reads the write side instead.
"""

from __future__ import annotations

from datetime import datetime

from libs.events.envelope import occurred_at
from libs.events.topics import ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_types_pb2
from services.room.domain.evolve import evolve
from services.room.domain.state import INITIAL, Space

LIVE = room_types_pb2.SPACE_STATE_LIVE
ROLE_NAMES = {
    room_types_pb2.ROLE_HOST: "host",
    room_types_pb2.ROLE_CO_HOST: "co-host",
    room_types_pb2.ROLE_SPEAKER: "speaker",
    room_types_pb2.ROLE_LISTENER: "listener",
}


class SpaceDirectory:
    name = "room-space-directory"
    topics = (ROOM_EVENTS,)

    def __init__(self) -> None:
        self.spaces: dict[str, Space] = {}

    def apply(self, event: ConsumedEvent) -> None:
        space_id = event.envelope.space_id
        current = self.spaces.get(space_id, INITIAL)
        self.spaces[space_id] = evolve(current, event.payload, occurred_at(event.envelope))

    def get(self, space_id: str) -> Space | None:
        return self.spaces.get(space_id)

    def query(self, states: frozenset[int], host_user_id: str) -> list[Space]:
        """Spaces matching the filters, newest first."""
        matches = [
            s
            for s in self.spaces.values()
            if s.exists
            and (not states or s.state in states)
            and (not host_user_id or s.host_user_id == host_user_id)
        ]
        matches.sort(key=lambda s: (s.created_at, s.space_id), reverse=True)
        return matches

    def live_census(self) -> tuple[int, dict[str, int]]:
        """Live Spaces, and their participants by role name (for the metrics)."""
        live = [s for s in self.spaces.values() if s.exists and s.state == LIVE]
        roles: dict[str, int] = dict.fromkeys(ROLE_NAMES.values(), 0)
        for space in live:
            for participant in space.participants.values():
                name = ROLE_NAMES.get(participant.role)
                if name:
                    roles[name] += 1
        return len(live), roles

    def abandoned(self, now: datetime, grace) -> list[str]:
        """Live Spaces whose hosts and co-hosts have all been away for at least `grace`."""
        return [
            s.space_id
            for s in self.spaces.values()
            if s.exists
            and s.state == LIVE
            and s.unattended_since is not None
            and now - s.unattended_since >= grace
        ]
