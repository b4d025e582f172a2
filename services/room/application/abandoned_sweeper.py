"""Ends live Spaces that no host or co-host has attended for the grace period.

It finds candidates in the directory projection, then asks the Space's own
stream: `EndAbandonedSpace` is decided on the authoritative state, so a host
who came back a moment ago keeps the Space alive, and two replicas sweeping at
once end it only once.
"""

from __future__ import annotations

import logging

from libs.application.periodic import PeriodicSweep
from libs.domain.errors import DomainError
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import EndAbandonedSpace
from services.room.projections.space_directory import SpaceDirectory

log = logging.getLogger(__name__)


class AbandonedSpaceSweeper(PeriodicSweep):
    name = "abandoned-space-sweep"

    def __init__(self, commands: SpaceCommands, directory: SpaceDirectory, interval_seconds: float):
        super().__init__(interval_seconds)
        self.commands = commands
        self.directory = directory

    async def sweep(self) -> list[str]:
        ended = []
        now = self.commands.clock()
        for space_id in await self.directory.abandoned(now, self.commands.limits.abandoned_grace):
            try:
                events = await self.commands.run_as_system(
                    space_id, EndAbandonedSpace(space_id=space_id), reason="abandoned-space-sweep"
                )
            except DomainError as e:
                log.debug("space %s not ended: %s", space_id, e.message)
                continue
            if events:
                ended.append(space_id)
                log.info("ended abandoned space %s", space_id)
        return ended
