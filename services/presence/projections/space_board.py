"""Who is in each Space, with role, mute, raised hand and connection: the "who's here" view.

Built from four topics: the room's (membership, roles, requests to speak),
moderation's (mutes), presence's own (connections) and the media relay's
(who is talking). Membership, roles, mutes and raised hands are the one fold
every service shares (`libs.domain.membership`); connections and talking are
presence's own flags. Each Space keeps its members and the flags separately,
so the flags are right whichever topic's event arrives first. Every change goes
to the Space's watchers.

The board also knows which Spaces exist and which have ended, so presence can
refuse heartbeats and questions about Spaces that do not exist. It lags the
room by the log's delivery time; `wait_until_known` gives a Space created a
moment ago a bounded chance to arrive.

A watcher has a bounded queue. When it is full the watcher is not waited for:
its queue is dropped and it is marked to receive a fresh snapshot, so a slow
gateway never slows the others or the projection.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from libs.domain.membership import Change, SpaceMembers, role_of
from libs.events.envelope import occurred_at
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.media.v1 import media_events_pb2 as media
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

JOINED, UPDATED, LEFT = (
    pt.MEMBER_CHANGE_KIND_JOINED,
    pt.MEMBER_CHANGE_KIND_UPDATED,
    pt.MEMBER_CHANGE_KIND_LEFT,
)


class Lifecycle(enum.Enum):
    UNKNOWN = "unknown"  # no SpaceCreated seen (yet)
    OPEN = "open"  # scheduled or live
    ENDED = "ended"  # ended or cancelled


@dataclass
class Board:
    space: SpaceMembers = field(default_factory=SpaceMembers)  # members, roles, mutes, raised hands
    connected: set[str] = field(default_factory=set)
    speaking: set[str] = field(default_factory=set)

    @property
    def lifecycle(self) -> Lifecycle:
        roster = self.space.roster
        if roster.is_over:
            return Lifecycle.ENDED
        return Lifecycle.OPEN if roster.exists else Lifecycle.UNKNOWN

    def is_member(self, user_id: str) -> bool:
        return self.space.role_of(user_id) != rt.ROLE_UNSPECIFIED

    def member(self, user_id: str) -> pt.SpaceMember:
        entry = self.space.member(user_id)
        return pt.SpaceMember(
            user_id=user_id,
            role=role_of(self.space.roster, entry),
            muted=entry.muted,
            hand_raised=entry.hand_raised_at is not None,
            connected=user_id in self.connected,
            speaking=user_id in self.speaking,
        )


class Watcher:
    def __init__(self, space_id: str, capacity: int):
        self.space_id = space_id
        self.queue: asyncio.Queue[pt.MemberChange] = asyncio.Queue(maxsize=capacity)
        self.needs_snapshot = True
        self.wake = asyncio.Event()
        self.wake.set()

    def offer(self, change: pt.MemberChange) -> None:
        if self.needs_snapshot:
            return  # the coming snapshot includes it
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.needs_snapshot = True
            self.queue = asyncio.Queue(maxsize=self.queue.maxsize)
        self.wake.set()


class SpaceBoard:
    name = "presence-space-board"
    topics = (ROOM_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, MEDIA_EVENTS)

    def __init__(self, watcher_capacity: int = 1000):
        self.boards: dict[str, Board] = {}
        self.watchers: dict[str, set[Watcher]] = {}
        self.watcher_capacity = watcher_capacity
        self._connected_in: dict[str, set[str]] = {}  # user -> Spaces the log says they are connected to
        self._applied: asyncio.Event | None = None  # set on the next apply, for callers waiting on it

    def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        space_id = event.envelope.space_id
        if not space_id:
            return  # blocks are keyed by host, not by Space
        if self._applied is not None:
            self._applied.set()
            self._applied = None
        board = self.boards.get(space_id)
        if board is None:
            board = self.boards[space_id] = Board()
        self._index_connections(space_id, board, e)
        for kind, user_id in self._change(board, e, occurred_at(event.envelope)):
            change = pt.MemberChange(kind=kind, member=board.member(user_id))
            if kind == LEFT:
                change.member.role = rt.ROLE_UNSPECIFIED
            for watcher in self.watchers.get(space_id, ()):
                watcher.offer(change)

    def _index_connections(self, space_id: str, board: Board, e) -> None:
        """Keeps who-is-connected-where, and drops connections the room ended (a leave, the end)."""
        match e:
            case pev.ParticipantConnected():
                self._connected_in.setdefault(e.user_id, set()).add(space_id)
                return
            case pev.ParticipantTimedOut() | rev.ParticipantLeft():
                gone = [e.user_id]
                board.connected.discard(e.user_id)
            case rev.SpaceEnded():
                gone = list(board.connected)
                board.connected.clear()
            case _:
                return
        for user_id in gone:
            spaces = self._connected_in.get(user_id)
            if spaces is not None:
                spaces.discard(space_id)
                if not spaces:
                    del self._connected_in[user_id]

    def lifecycle(self, space_id: str) -> Lifecycle:
        board = self.boards.get(space_id)
        return Lifecycle.UNKNOWN if board is None else board.lifecycle

    async def wait_until_known(self, space_ids: Iterable[str], timeout: float) -> None:
        """Returns once every Space named is known (or ended), or after `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(self.lifecycle(s) is Lifecycle.UNKNOWN for s in space_ids):
            left = deadline - loop.time()
            if left <= 0:
                return
            if self._applied is None:
                self._applied = asyncio.Event()
            try:
                await asyncio.wait_for(self._applied.wait(), left)
            except TimeoutError:
                return

    def connected_in(self, user_id: str) -> list[str]:
        """The Spaces the log says `user_id` is connected to (normally one)."""
        return sorted(self._connected_in.get(user_id, ()))

    @staticmethod
    def _change(board: Board, e, at) -> list[tuple[int, str]]:
        match e:
            case rev.SpaceEnded():
                gone = board.space.ordered()
                board.space.apply(e, at)
                board.speaking.clear()
                return [(LEFT, u) for u in gone]
            case rev.ParticipantLeft():
                board.speaking.discard(e.user_id)
                return _kinds(board.space.apply(e, at))
            case pev.ParticipantConnected():
                board.connected.add(e.user_id)
            case pev.ParticipantTimedOut():
                board.connected.discard(e.user_id)
            case media.SpeakerStartedTalking():
                board.speaking.add(e.user_id)
            case media.SpeakerStoppedTalking():
                board.speaking.discard(e.user_id)
            case _:
                return _kinds(board.space.apply(e, at))
        return [(UPDATED, e.user_id)] if board.is_member(e.user_id) else []

    def snapshot(self, space_id: str) -> list[pt.SpaceMember]:
        board = self.boards.get(space_id)
        return [] if board is None else [board.member(u) for u in board.space.ordered()]

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


def _kinds(change: Change | None) -> list[tuple[int, str]]:
    """The member change a watcher sees: joined, left, or updated (role, mute or raised hand)."""
    if change is None:
        return []
    before, after = change.before.is_in, change.after.is_in
    if after:
        return [(UPDATED if before else JOINED, change.user_id)]
    return [(LEFT, change.user_id)] if before else []
