"""The "who's here" board: flags from three topics, changes to watchers, slow watchers resynced."""

from datetime import UTC, datetime

from libs.events.envelope import Causation, wrap
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.presence.projections.space_board import SpaceBoard

S = "s"


def consumed(payload) -> ConsumedEvent:
    envelope = wrap(
        payload,
        producer="p",
        stream_id="x",
        version=1,
        space_id=S,
        occurred_at=datetime.now(UTC),
        causation=Causation("a", "c", "c"),
    )
    return ConsumedEvent(envelope, payload, "t", 0, 0)


def feed(board, *payloads):
    for payload in payloads:
        board.apply(consumed(payload))


def test_members_carry_role_mute_hand_and_connection_in_role_order():
    board = SpaceBoard()
    feed(
        board,
        pev.ParticipantConnected(space_id=S, user_id="ann"),  # presence may come before the room's join
        rev.ParticipantJoined(space_id=S, user_id="ann", role=rt.ROLE_LISTENER),
        rev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST),
        rev.ParticipantJoined(space_id=S, user_id="sam", role=rt.ROLE_LISTENER),
        rev.SpeakerAdded(space_id=S, user_id="sam"),
        mev.ParticipantMuted(space_id=S, user_id="sam"),
        rev.SpeakRequested(space_id=S, user_id="ann"),
    )
    members = [(m.user_id, m.role, m.muted, m.hand_raised, m.connected) for m in board.snapshot(S)]
    assert members == [
        ("host", rt.ROLE_HOST, False, False, False),
        ("sam", rt.ROLE_SPEAKER, True, False, False),
        ("ann", rt.ROLE_LISTENER, False, True, True),
    ]


def test_watchers_get_changes_in_order_and_a_slow_one_is_resynced():
    board = SpaceBoard(watcher_capacity=2)
    fast, slow = board.watch(S), board.watch(S)
    fast.needs_snapshot = slow.needs_snapshot = False  # as after their first snapshot
    feed(board, rev.ParticipantJoined(space_id=S, user_id="a", role=rt.ROLE_LISTENER))
    feed(board, rev.SpeakRequested(space_id=S, user_id="a"))
    changes = [fast.queue.get_nowait() for _ in range(2)]
    assert [c.kind for c in changes] == [pt.MEMBER_CHANGE_KIND_JOINED, pt.MEMBER_CHANGE_KIND_UPDATED]
    assert changes[1].member.hand_raised
    feed(board, rev.ParticipantLeft(space_id=S, user_id="a"))
    assert fast.queue.get_nowait().kind == pt.MEMBER_CHANGE_KIND_LEFT
    assert slow.needs_snapshot and slow.queue.empty()  # overflowed: it gets a snapshot, not a backlog
    board.unwatch(fast)
    board.unwatch(slow)
    assert S not in board.watchers


def test_speaking_follows_the_relays_talking_events_and_watchers_see_it():
    from podium.media.v1 import media_events_pb2 as media

    board = SpaceBoard()
    feed(board, rev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST))
    watcher = board.watch(S)
    watcher.needs_snapshot = False  # the snapshot was sent; changes follow
    feed(board, media.SpeakerStartedTalking(space_id=S, user_id="host"))
    assert [m.speaking for m in board.snapshot(S)] == [True]
    feed(board, media.SpeakerStoppedTalking(space_id=S, user_id="host", talked_ms=900))
    assert [m.speaking for m in board.snapshot(S)] == [False]
    changes = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert [c.member.speaking for c in changes if c.kind == pt.MEMBER_CHANGE_KIND_UPDATED] == [True, False]


def test_the_board_knows_where_each_user_is_connected():
    board = SpaceBoard()
    other = "t"

    def in_other(payload):
        envelope = consumed(payload).envelope
        envelope.space_id = other
        return ConsumedEvent(envelope, payload, "t", 0, 0)

    feed(
        board,
        pev.ParticipantConnected(space_id=S, user_id="ann"),
        pev.ParticipantConnected(space_id=S, user_id="bo"),
    )
    board.apply(in_other(pev.ParticipantConnected(space_id=other, user_id="ann")))
    assert board.connected_in("ann") == [S, other] and board.connected_in("bo") == [S]
    feed(board, pev.ParticipantTimedOut(space_id=S, user_id="ann"))
    assert board.connected_in("ann") == [other]
    feed(
        board, rev.ParticipantJoined(space_id=S, user_id="bo"), rev.ParticipantLeft(space_id=S, user_id="bo")
    )
    assert board.connected_in("bo") == []
    board.apply(in_other(rev.SpaceEnded(space_id=other)))
    assert board.connected_in("ann") == [] and board.connected_in("nobody") == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rows:
    """The durable rows' answers, as a dict of stored states."""

    def __init__(self, states: dict[str, int]):
        self.states = states

    async def states_of(self, space_ids):
        return {s: self.states[s] for s in space_ids if s in self.states}


def in_space(space_id: str, payload) -> ConsumedEvent:
    envelope = consumed(payload).envelope
    envelope.space_id = space_id
    return ConsumedEvent(envelope, payload, "t", 0, 0)


async def test_an_ended_space_leaves_memory_after_its_time_and_its_row_still_says_it_ended():
    from services.presence.projections.space_board import Lifecycle

    clock = Clock()
    board = SpaceBoard(Rows({"old": rt.SPACE_STATE_ENDED}), forget_ended_after=60, clock=clock)  # type: ignore[arg-type]
    for space_id in ("old", "live"):
        board.apply(in_space(space_id, rev.SpaceCreated(space_id=space_id, host_user_id="h")))
        board.apply(in_space(space_id, pev.ParticipantConnected(space_id=space_id, user_id="ann")))
    board.apply(in_space("old", rev.SpaceEnded(space_id="old")))
    assert board.lifecycle("old") is Lifecycle.ENDED and board.connected_in("ann") == ["live"]
    clock.now += 61
    board.apply(in_space("live", rev.SpaceStarted(space_id="live")))  # any later event sweeps
    assert not board.holds("old") and board.holds("live")
    answers = await board.lifecycles(["old", "live", "never"], timeout=0)
    assert answers == {"old": Lifecycle.ENDED, "live": Lifecycle.OPEN, "never": Lifecycle.UNKNOWN}


def test_watchers_see_the_spaces_own_changes_before_its_members_changes():
    board = SpaceBoard()
    feed(board, rev.SpaceCreated(space_id=S, host_user_id="host", title="Hi", recording_enabled=True))
    watcher = board.watch(S)
    watcher.needs_snapshot = False  # the snapshot was sent; changes follow
    feed(
        board,
        rev.SpaceStarted(space_id=S, host_user_id="host"),
        rev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST),
        rev.SpaceUpdated(space_id=S, changed_fields=["title"], title="Later"),
        rev.SpaceEnded(space_id=S, reason=rev.END_REASON_HOST_ENDED),
    )
    told = []
    while not watcher.queue.empty():
        change = watcher.queue.get_nowait()
        if isinstance(change, pt.SpaceChange):
            told.append((pt.SpaceChangeKind.Name(change.kind), change.space.state, change.space.recording))
        else:
            told.append((pt.MemberChangeKind.Name(change.kind), change.member.user_id))
    assert told == [
        ("SPACE_CHANGE_KIND_STARTED", rt.SPACE_STATE_LIVE, True),
        ("SPACE_CHANGE_KIND_RECORDING_STARTED", rt.SPACE_STATE_LIVE, True),
        ("MEMBER_CHANGE_KIND_JOINED", "host"),
        ("SPACE_CHANGE_KIND_UPDATED", rt.SPACE_STATE_LIVE, True),
        ("SPACE_CHANGE_KIND_ENDED", rt.SPACE_STATE_ENDED, False),
        ("SPACE_CHANGE_KIND_RECORDING_STOPPED", rt.SPACE_STATE_ENDED, False),
        ("MEMBER_CHANGE_KIND_LEFT", "host"),
    ]
