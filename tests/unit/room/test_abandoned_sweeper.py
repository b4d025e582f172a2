"""The abandoned-Space sweep, over the real decider: a Space whose host left in a mass time-out is
not ended on the usual grace, and the sweep does not ask again before the longer one is over."""

from __future__ import annotations

from datetime import timedelta

from libs.domain.decider import SYSTEM_CLAIM, Context
from podium.room.v1 import room_events_pb2 as ev
from services.room.application.abandoned_sweeper import AbandonedSpaceSweeper
from services.room.domain.decide import decide
from services.room.domain.limits import RoomLimits
from tests.unit.room.given import HOST, NOW, SPACE, at, joined, live, state_of

LIMITS = RoomLimits(abandoned_grace=timedelta(minutes=5), abandoned_grace_without_evidence=timedelta(hours=1))


class Commands:
    """SpaceCommands over one Space's events, deciding with the room's decider."""

    def __init__(self, events: list):
        self.events = events
        self.limits = LIMITS
        self.now = NOW
        self.asked = 0

    def clock(self):
        return self.now

    async def run_as_system(self, space_id: str, command: object, reason: str) -> list:
        self.asked += 1
        ctx = Context("system:room", self.now, frozenset({SYSTEM_CLAIM}))
        produced = decide(command, state_of(*self.events), ctx, self.limits)
        self.events += produced
        return produced


class Directory:
    """The directory's candidates: the Space, once its grace has run out."""

    def __init__(self, commands: Commands):
        self.commands = commands

    async def abandoned(self, now, grace) -> list[str]:
        state = state_of(*self.commands.events)
        return (
            [SPACE]
            if state.is_live and state.unattended_since and state.unattended_since <= now - grace
            else []
        )


async def sweep_at(sweeper: AbandonedSpaceSweeper, commands: Commands, seconds: float) -> list[str]:
    commands.now = at(seconds)
    return await sweeper.sweep()


async def test_a_host_gone_in_a_mass_time_out_is_waited_for_the_longer_grace_and_asked_about_once():
    mass = ev.ParticipantLeft(
        space_id=SPACE, user_id=HOST, reason=ev.LEAVE_REASON_TIMED_OUT, mass_time_out=True
    )
    commands = Commands([*live(), *joined("ann"), mass])
    sweeper = AbandonedSpaceSweeper(commands, Directory(commands), interval_seconds=5)
    assert await sweep_at(sweeper, commands, 299) == []
    assert commands.asked == 0  # not a candidate yet
    assert await sweep_at(sweeper, commands, 300) == []
    assert commands.asked == 1  # refused: no evidence that the host is gone
    for seconds in range(305, 3600, 300):
        assert await sweep_at(sweeper, commands, seconds) == []
    assert commands.asked == 1, "not asked again before the longer grace is over"
    assert await sweep_at(sweeper, commands, 3600) == [SPACE]
    assert commands.asked == 2


async def test_a_host_gone_on_evidence_ends_the_space_on_the_usual_grace():
    left = ev.ParticipantLeft(space_id=SPACE, user_id=HOST, reason=ev.LEAVE_REASON_TIMED_OUT)
    commands = Commands([*live(), *joined("ann"), left])
    sweeper = AbandonedSpaceSweeper(commands, Directory(commands), interval_seconds=5)
    assert await sweep_at(sweeper, commands, 300) == [SPACE]
