"""The relay's admission cache: live Spaces in memory, ended ones leaving, a start from a snapshot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from libs.domain.membership import SpaceMembers
from libs.events.envelope import Causation, wrap
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.media_relay.domain.admission import Admission
from services.media_relay.projections.space_media import SpaceMediaView
from services.media_relay.projections.space_media_rows import StoredSpace

AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(payload, space_id: str, producer: str = "room") -> ConsumedEvent:
    envelope = wrap(
        payload,
        producer=producer,
        stream_id=f"space-{space_id}",
        version=1,
        space_id=space_id,
        occurred_at=AT,
        causation=Causation("someone", "c", "c"),
    )
    return ConsumedEvent(envelope, payload, "topic", 0, 0)


def live(space_id: str) -> list[ConsumedEvent]:
    return [
        event(rev.SpaceCreated(space_id=space_id, host_user_id="host"), space_id),
        event(rev.SpaceStarted(space_id=space_id, host_user_id="host"), space_id),
        event(rev.ParticipantJoined(space_id=space_id, user_id="host", role=rt.ROLE_HOST), space_id),
    ]


def ended(space_id: str) -> ConsumedEvent:
    return event(rev.SpaceEnded(space_id=space_id), space_id)


def muted(space_id: str, user_id: str) -> ConsumedEvent:
    mute = mev.ParticipantMuted(space_id=space_id, user_id=user_id, kind=mt.MUTE_KIND_HOST)
    return event(mute, space_id, producer="moderation")


def view_with(clock: Clock, **kw) -> tuple[SpaceMediaView, list[str]]:
    view = SpaceMediaView(clock=clock, **kw)
    ends: list[str] = []
    view.on_ended = ends.append
    return view, ends


def test_an_ended_space_says_ended_then_leaves_memory_and_on_ended_fires_once():
    clock = Clock()
    view, ends = view_with(clock, forget_ended_after=60)
    for e in (*live("s"), *live("t")):
        view.apply(e)
    view.apply(ended("s"))
    assert view.admit("s", "host") is Admission.ENDED and ends == ["s"]
    clock.now += 61
    view.apply(muted("t", "host"))  # any later event: the ended Space's time is up
    assert not view.holds("s") and "s" not in view.changed_at
    assert view.admit("s", "host") is Admission.UNKNOWN_SPACE
    assert view.admit("t", "host") is Admission.HARD_MUTED  # a live Space stays
    view.apply(ended("s"))  # the log holds the end twice: the Space is not ended again
    assert ends == ["s"]


def test_at_most_keep_ended_ended_spaces_stay_however_recent():
    view, ends = view_with(Clock(), forget_ended_after=3600, keep_ended=2)
    for space_id in ("a", "b", "c", "d"):
        for e in live(space_id):
            view.apply(e)
        view.apply(ended(space_id))
    assert ends == ["a", "b", "c", "d"]
    assert sorted(view.spaces) == ["c", "d"]


def test_a_mute_read_before_its_space_was_created_still_counts():
    """The room and moderation topics are read side by side: a mute may be read first."""
    view, _ = view_with(Clock())
    view.apply(muted("s", "host"))
    for e in live("s"):
        view.apply(e)
    assert view.admit("s", "host") is Admission.HARD_MUTED


def test_an_entry_for_a_space_never_seen_created_leaves_memory():
    """A late event of a Space over before the snapshot: not kept for ever."""
    clock = Clock()
    view, ends = view_with(clock, forget_ended_after=10)
    view.apply(muted("old", "someone"))
    assert view.holds("old")
    clock.now += 11
    for e in live("new"):
        view.apply(e)
    assert not view.holds("old") and view.holds("new") and ends == []


class Rows:
    """The durable view's reads, as a dict."""

    def __init__(self, stored: dict[str, StoredSpace], states: dict[str, int]):
        self.stored, self.states = stored, states

    async def snapshot(self, conn) -> dict[str, StoredSpace]:
        return self.stored

    async def state_of(self, space_id: str) -> int | None:
        return self.states.get(space_id)


def stored(*events: ConsumedEvent, recording=False) -> StoredSpace:
    members = SpaceMembers()
    for e in events:
        members.apply(e.payload, AT)
    return StoredSpace(members, recording, {(e.envelope.producer, e.envelope.stream_id) for e in events})


async def test_a_start_loads_the_live_spaces_and_names_their_streams():
    rows = Rows({"s": stored(*live("s"), muted("s", "host"), recording=True)}, {})
    view = SpaceMediaView(rows)  # type: ignore[arg-type]
    streams = await view.load(conn=None)
    assert streams == {("room", "space-s"): "s", ("moderation", "space-s"): "s"}
    assert view.admit("s", "host") is Admission.HARD_MUTED and view.recording("s")


async def test_a_space_not_in_memory_is_looked_up_in_its_rows_when_a_stream_opens():
    rows = Rows({}, {"gone": rt.SPACE_STATE_ENDED, "behind": rt.SPACE_STATE_LIVE})
    view = SpaceMediaView(rows)  # type: ignore[arg-type]
    assert await view.admit_opening("gone", "host") is Admission.ENDED
    assert await view.admit_opening("nowhere", "host") is Admission.UNKNOWN_SPACE
    assert await view.wait_for_admission("gone", None, 1.0) is Admission.ENDED
    assert await view.wait_for_admission("nowhere", None, 1.0) is Admission.UNKNOWN_SPACE

    # Stored and live, not yet read by this replica: the subscription waits for the cache.
    waiting = asyncio.create_task(view.wait_for_admission("behind", None, 5.0))
    await asyncio.sleep(0.01)
    for e in live("behind"):
        view.apply(e)
    assert await waiting is Admission.ADMITTED
