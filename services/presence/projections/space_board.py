"""Who is in each Space, with role, mute, raised hand and connection: the "who's here" board.

Every presence replica keeps the boards of the live Spaces in memory, folded from four topics:
the room's (membership, roles, requests to speak), moderation's (mutes), presence's own
(connections) and the media relay's (who is talking), with the board's one fold
(`services.presence.domain.board`), and beside each board the Space's own details (title,
settings, times, recording: `libs.domain.space_details`). Every change goes to the Space's
watchers: the Space's own first (`SpaceChange`), then its members' (`MemberChange`).

It starts from a snapshot of presence's durable rows (`space_board_rows.SpaceBoardRows`: `load`)
and reads the log on from the snapshot's positions itself (`libs.projection.durable.CacheRunner`),
so a start costs the live Spaces, not the history.

The board also knows which Spaces exist and which have ended, so presence can refuse heartbeats
and questions about Spaces that do not exist. An ended Space stays in memory
`forget_ended_after` seconds (heartbeats racing its end are told it ended), at most `keep_ended`
of them, then leaves (`libs.projection.leaving`); from then on its row answers for it
(`lifecycles`). The board lags the room by the log's delivery time; `lifecycles` gives a Space
created a moment ago a bounded chance to arrive.

A watcher has a bounded queue. When it is full the watcher is not waited for:
its queue is dropped and it is marked to receive a fresh snapshot, so a slow
gateway never slows the others or the projection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import asyncpg

from libs.domain import space_details as sd
from libs.domain.membership import OVER, Roster
from libs.events.envelope import occurred_at
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, ROOM_EVENTS
from libs.projection.leaving import LeavingSpaces
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Stream
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.presence.domain.board import LEFT, Board, Lifecycle, fold
from services.presence.projections.space_board_rows import SpaceBoardRows

__all__ = ["Board", "Lifecycle", "SpaceBoard", "Watcher"]


class Watcher:
    def __init__(self, space_id: str, capacity: int):
        self.space_id = space_id
        self.queue: asyncio.Queue[pt.MemberChange | pt.SpaceChange] = asyncio.Queue(maxsize=capacity)
        self.needs_snapshot = True
        self.wake = asyncio.Event()
        self.wake.set()

    def offer(self, change: pt.MemberChange | pt.SpaceChange) -> None:
        if self.needs_snapshot:
            return  # the coming snapshot includes it
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.needs_snapshot = True
            self.queue = asyncio.Queue(maxsize=self.queue.maxsize)
        self.wake.set()


class SpaceBoard:
    name = "presence-space-board-cache"
    topics = (ROOM_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, MEDIA_EVENTS)

    def __init__(
        self,
        rows: SpaceBoardRows | None = None,
        *,
        watcher_capacity: int = 1000,
        forget_ended_after: float = 60.0,
        keep_ended: int = 10_000,
        clock: Callable[[], float] = time.time,
    ):
        self.rows = rows
        self.boards: dict[str, Board] = {}
        self.details: dict[str, sd.SpaceDetails] = {}  # of the Spaces in `boards`
        self.watchers: dict[str, set[Watcher]] = {}
        self.watcher_capacity = watcher_capacity
        self._connected_in: dict[str, set[str]] = {}  # user -> Spaces the log says they are connected to
        self._applied: asyncio.Event | None = None  # set on the next apply, for callers waiting on it
        # Spaces on their way out of memory: ended, or never seen created.
        self.leaving = LeavingSpaces(
            after=forget_ended_after,
            keep=keep_ended,
            clock=clock,
            still_open=lambda space_id: self.lifecycle(space_id) is Lifecycle.OPEN,
            forget=self._forget,
        )

    # Filled from the durable rows, kept current by the log

    async def load(self, conn: asyncpg.Connection) -> dict[Stream, str]:
        """The Spaces the rows hold that are not over; the streams they were folded from."""
        assert self.rows is not None
        streams: dict[Stream, str] = {}
        for space_id, stored in (await self.rows.snapshot(conn)).items():
            self.boards[space_id] = stored.board
            self.details[space_id] = stored.details
            for user_id in stored.board.connected:
                self._connected_in.setdefault(user_id, set()).add(space_id)
            if stored.board.lifecycle is Lifecycle.UNKNOWN:
                self.leaving.schedule(space_id)
            streams.update(dict.fromkeys(stored.streams, space_id))
        return streams

    def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        space_id = event.envelope.space_id
        if not space_id:
            return  # blocks are keyed by host, not by Space
        if self._applied is not None:
            self._applied.set()
            self._applied = None
        self.leaving.sweep()
        board = self.boards.get(space_id)
        if board is None:
            board = self.boards[space_id] = Board()
        before = board.lifecycle
        roster, details = board.space.roster, self.details.get(space_id, sd.EMPTY)
        at = occurred_at(event.envelope)
        self._index_connections(space_id, board, e)
        members = fold(board, e, at)
        after = sd.evolve(details, e, at)
        if after is not details or board.space.roster.state != roster.state:  # most events: neither
            self.details[space_id] = after
            self._tell_space_changes(space_id, roster.state, details, board.space.roster, after)
        for kind, user_id in members:
            change = pt.MemberChange(kind=kind, member=board.member(user_id))
            if kind == LEFT:
                change.member.role = rt.ROLE_UNSPECIFIED
            for watcher in self.watchers.get(space_id, ()):
                watcher.offer(change)
        after = board.lifecycle
        if after is Lifecycle.ENDED and before is not Lifecycle.ENDED:
            self.leaving.schedule(space_id)
        elif after is Lifecycle.UNKNOWN and not self.leaving.scheduled(space_id):
            self.leaving.schedule(space_id)

    def _tell_space_changes(
        self,
        space_id: str,
        state_before: int,
        before: sd.SpaceDetails,
        roster: Roster,
        after: sd.SpaceDetails,
    ) -> None:
        for kind, fields in sd.changes(state_before, before, roster.state, after):
            change = pt.SpaceChange(
                kind=_SPACE_CHANGE_KINDS[kind],
                changed_fields=fields,
                space=space_view(space_id, roster, after),
            )
            for watcher in self.watchers.get(space_id, ()):
                watcher.offer(change)

    def holds(self, space_id: str) -> bool:
        return space_id in self.boards

    def _forget(self, space_id: str) -> None:
        self.details.pop(space_id, None)
        board = self.boards.pop(space_id, None)
        if board is not None:
            self._disconnect(space_id, board.connected)

    def _index_connections(self, space_id: str, board: Board, e) -> None:
        """Keeps who-is-connected-where (before the fold clears the board's flags)."""
        match e:
            case pev.ParticipantConnected():
                self._connected_in.setdefault(e.user_id, set()).add(space_id)
            case pev.ParticipantTimedOut() | rev.ParticipantLeft():
                self._disconnect(space_id, [e.user_id])
            case rev.SpaceEnded():
                self._disconnect(space_id, board.connected)

    def _disconnect(self, space_id: str, users: Iterable[str]) -> None:
        for user_id in list(users):
            spaces = self._connected_in.get(user_id)
            if spaces is not None:
                spaces.discard(space_id)
                if not spaces:
                    del self._connected_in[user_id]

    # Questions

    def lifecycle(self, space_id: str) -> Lifecycle:
        """The Space's lifecycle as memory holds it (UNKNOWN for a Space not held)."""
        board = self.boards.get(space_id)
        return Lifecycle.UNKNOWN if board is None else board.lifecycle

    async def lifecycles(self, space_ids: Iterable[str], timeout: float) -> dict[str, Lifecycle]:
        """Each Space's lifecycle, waiting up to `timeout` s for Spaces not known yet.

        A Space not in memory is looked up in the rows: over, it ENDED (it left memory); stored
        and open, or not stored, memory is waited for (the rows' writer read it first, or it was
        created a moment ago). Once the time is up, the rows' answer stands."""
        space_ids = set(space_ids)
        answers = {s: self.lifecycle(s) for s in space_ids}
        missing = {s for s, life in answers.items() if life is Lifecycle.UNKNOWN}
        if not missing:
            return answers
        stored = await self.rows.states_of(missing) if self.rows is not None else {}
        for space_id, state in stored.items():
            if state in OVER:
                answers[space_id] = Lifecycle.ENDED
                missing.discard(space_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while missing and (left := deadline - loop.time()) > 0:
            if self._applied is None:
                self._applied = asyncio.Event()
            try:
                await asyncio.wait_for(self._applied.wait(), left)
            except TimeoutError:
                break
            for space_id in list(missing):
                if (life := self.lifecycle(space_id)) is not Lifecycle.UNKNOWN:
                    answers[space_id] = life
                    missing.discard(space_id)
        if missing and self.rows is not None:
            stored = await self.rows.states_of(missing)
            for space_id in missing:
                state = stored.get(space_id, rt.SPACE_STATE_UNSPECIFIED)
                if state in OVER:
                    answers[space_id] = Lifecycle.ENDED
                elif state != rt.SPACE_STATE_UNSPECIFIED:
                    answers[space_id] = Lifecycle.OPEN
        return answers

    def parts_of(self, space_id: str) -> int:
        """How many parts the Space's presence is split into (1: not split, or not held)."""
        board = self.boards.get(space_id)
        return 1 if board is None else board.parts

    def connected_in(self, user_id: str) -> list[str]:
        """The Spaces the log says `user_id` is connected to (normally one)."""
        return sorted(self._connected_in.get(user_id, ()))

    def snapshot(self, space_id: str) -> list[pt.SpaceMember]:
        """Everyone in the Space now (none for a Space not held: unknown, or ended and forgotten)."""
        board = self.boards.get(space_id)
        return [] if board is None else [board.member(u) for u in board.space.ordered()]

    async def space(self, space_id: str) -> pt.SpaceDetails:
        """The Space's own details now; from the rows for a Space not held (ended and forgotten)."""
        board = self.boards.get(space_id)
        if board is not None:
            return space_view(space_id, board.space.roster, self.details.get(space_id, sd.EMPTY))
        stored = await self.rows.details_of(space_id) if self.rows is not None else None
        if stored is None:
            return pt.SpaceDetails(space_id=space_id)
        return space_view(space_id, *stored)

    def watch(self, space_id: str) -> Watcher:
        watcher = Watcher(space_id, self.watcher_capacity)
        self.watchers.setdefault(space_id, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watchers = self.watchers.get(watcher.space_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self.watchers[watcher.space_id]


_SPACE_CHANGE_KINDS = {
    change: pt.SpaceChangeKind.Value(f"SPACE_CHANGE_KIND_{change.name}") for change in sd.Change
}


def _time(message, name: str, value) -> None:
    if value is not None:
        getattr(message, name).FromDatetime(value)


def space_view(space_id: str, roster: Roster, details: sd.SpaceDetails) -> pt.SpaceDetails:
    """The Space's own details as WatchSpace shows them."""
    view = pt.SpaceDetails(
        space_id=space_id,
        host_user_id=roster.host_user_id,
        title=details.title,
        description=details.description,
        state=roster.state,
        join_policy=details.join_policy,
        end_reason=details.end_reason,
        recording_enabled=details.recording_enabled,
        recording=sd.recording(roster.state, details),
    )
    for name in ("scheduled_start", "started_at", "ended_at"):
        _time(view, name, getattr(details, name))
    return view
