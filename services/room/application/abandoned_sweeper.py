"""Ends live Spaces that no host or co-host has attended for the grace period.

It finds candidates in the directory projection, then asks the Space's own
stream: `EndAbandonedSpace` is decided on the authoritative state, so a host
who came back a moment ago keeps the Space alive, and two replicas sweeping at
once end it only once.

A Space whose hosts left in a mass time-out is not abandoned on evidence: the
decider refuses it until the longer grace (`abandoned_grace_without_evidence`)
has passed, and the sweeper does not ask again before then.
"""

from __future__ import annotations

import logging
from datetime import datetime

from libs.application.periodic import PeriodicSweep
from libs.domain.errors import DomainError
from libs.domain.reasons import Reason
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
        self.not_before: dict[str, datetime] = {}  # Space -> when its hosts' longer grace is over

    async def sweep(self) -> list[str]:
        ended = []
        now = self.commands.clock()
        candidates = await self.directory.abandoned(now, self.commands.limits.abandoned_grace)
        listed = set(candidates)
        self.not_before = {s: at for s, at in self.not_before.items() if s in listed and at > now}
        for space_id in candidates:
            if space_id in self.not_before:
                continue
            try:
                events = await self.commands.run_as_system(
                    space_id, EndAbandonedSpace(space_id=space_id), reason="abandoned-space-sweep"
                )
            except DomainError as e:
                log.debug("space %s not ended: %s", space_id, e.message)
                if e.why is Reason.HOSTS_GONE_IN_MASS_TIME_OUT:
                    self.not_before[space_id] = datetime.fromisoformat(e.metadata["not_before"])
                continue
            if events:
                ended.append(space_id)
                log.info("ended abandoned space %s", space_id)
        return ended
