"""The live census for the metrics: live Spaces and their participants by role.

Read from the directory every `interval_seconds` into the gauges, so a scrape
never waits on the database.
"""

from __future__ import annotations

from libs.application.periodic import PeriodicSweep
from libs.telemetry.metrics import LIVE_SPACES, SPACE_PARTICIPANTS
from services.room.projections.space_directory import ROLE_NAMES, SpaceDirectory


class LiveCensus(PeriodicSweep):
    name = "live-census"

    def __init__(self, directory: SpaceDirectory, interval_seconds: float):
        super().__init__(interval_seconds)
        self.directory = directory

    async def sweep(self) -> list[str]:
        spaces, roles = await self.directory.live_census()
        LIVE_SPACES.set(spaces)
        for role in ROLE_NAMES.values():
            SPACE_PARTICIPANTS.labels(role).set(roles[role])
        return []
