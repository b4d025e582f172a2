"""The ICE servers each peer connection uses, with TURN credentials minted per user at the moment.

source = IceServerSource(settings.ice_servers(), turn_secret, ttl_seconds)
source.for_user("ana")       # the page's list (GET /api/ice-servers)
source.for_user(gateway_id)  # the gateway's own side of each peer connection
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.gateway.domain.ice import IceServer, servers_for


class IceServerSource:
    def __init__(
        self,
        servers: tuple[IceServer, ...],
        turn_secret: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ):
        self.servers = servers
        self.turn_secret = turn_secret
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def for_user(self, user_id: str) -> list[IceServer]:
        return servers_for(
            self.servers,
            user_id=user_id,
            now=self.clock(),
            turn_secret=self.turn_secret,
            ttl_seconds=self.ttl_seconds,
        )
