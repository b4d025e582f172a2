"""Keeps scheduled Spaces' promises: reminders to subscribers, and expiry of a Space never started.

For each scheduled Space whose start is near or past (found in the directory projection), it
asks the Space's own stream, as the service itself:

- `RemindSubscribers(STARTING_SOON)` from the lead time before the scheduled start;
- `RemindSubscribers(STARTING_NOW)` from the scheduled start (a Space first seen after its start
  gets only this one: "starting soon" would come late);
- `ExpireSpace` once the start window after the scheduled start has passed.

The Space's state says which reminders were sent for its scheduled start as it is now, so a
second replica, a restart or a retry sends nothing twice; this process only remembers what it
asked for already, so it does not ask again every pass.
"""

from __future__ import annotations

import logging

from libs.application.periodic import PeriodicSweep
from libs.domain.errors import DomainError
from podium.room.v1 import room_events_pb2 as ev
from services.room.application.space_commands import SpaceCommands
from services.room.domain.commands import ExpireSpace, RemindSubscribers
from services.room.projections.space_directory import SpaceDirectory

log = logging.getLogger(__name__)


class ScheduledSpaces(PeriodicSweep):
    name = "scheduled-spaces"

    def __init__(self, commands: SpaceCommands, directory: SpaceDirectory, interval_seconds: float):
        super().__init__(interval_seconds)
        self.commands = commands
        self.directory = directory
        self._asked: set[tuple] = set()  # (space id, what, scheduled start) asked for already

    async def sweep(self) -> list[str]:
        limits = self.commands.limits
        now = self.commands.clock()
        done = []
        due = await self.directory.scheduled_before(now + limits.reminder_lead)
        for space_id, start in due:
            if now >= start + limits.start_window:
                what = ExpireSpace(space_id=space_id)
            elif now >= start:
                what = RemindSubscribers(space_id, ev.REMINDER_KIND_STARTING_NOW, start)
            else:
                what = RemindSubscribers(space_id, ev.REMINDER_KIND_STARTING_SOON, start)
            asked = (space_id, type(what), getattr(what, "kind", 0), start)
            if asked in self._asked:
                continue
            try:
                events = await self.commands.run_as_system(space_id, what, reason=self.name)
            except DomainError as e:
                log.debug("scheduled space %s: %s", space_id, e.message)
                continue
            self._asked.add(asked)
            if events:
                done.append(space_id)
        # Forget what no longer can be due (the Space started, ended or moved its start).
        still = {(space_id, start) for space_id, start in due}
        self._asked = {a for a in self._asked if (a[0], a[3]) in still}
        return done
