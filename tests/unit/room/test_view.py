"""The protobuf views the API returns, read straight from state."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.domain.decider import fold
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.evolve import evolve
from services.room.domain.state import INITIAL
from services.room.domain.view import (
    ROLE_ORDER,
    participant_message,
    participant_order,
    participants_in_order,
    participants_view,
    space_view,
    speak_requests_view,
)
from services.room.projections.space_directory import _stored
from tests.unit.room.given import HOST, NOW, SPACE, at, co_hosts, created, joined, live, requested, speakers


def timed(events, start_seconds: int = 0):
    return [(event, at(start_seconds + i)) for i, event in enumerate(events)]


def test_space_view_counts_and_times():
    log = timed([*live(), *co_hosts("co"), *speakers("s1", "s2"), *joined("l1", "l2", "l3")])
    state = fold(evolve, INITIAL, log)
    view = space_view(state)
    assert (view.space_id, view.title, view.host_user_id) == (SPACE, "Audio", HOST)
    assert view.state == types.SPACE_STATE_LIVE and view.join_policy == types.JOIN_POLICY_ANYONE
    assert list(view.co_host_user_ids) == ["co"] and list(view.speaker_user_ids) == ["s1", "s2"]
    assert (view.participant_count, view.listener_count) == (7, 3)
    assert view.version == state.version == len(log)
    assert view.created_at.ToDatetime(tzinfo=UTC) == NOW
    assert view.started_at.ToDatetime(tzinfo=UTC) == at(1)
    assert not view.HasField("ended_at") and not view.HasField("scheduled_start")


def test_space_view_without_the_host_present_and_when_scheduled():
    state = fold(
        evolve, INITIAL, timed([*live(), *joined("l"), ev.ParticipantLeft(space_id=SPACE, user_id=HOST)])
    )
    assert (space_view(state).participant_count, space_view(state).listener_count) == (1, 1)
    scheduled = fold(evolve, INITIAL, timed([created(scheduled_start=at(3600))]))
    view = space_view(scheduled)
    assert view.state == types.SPACE_STATE_SCHEDULED
    assert view.scheduled_start.ToDatetime(tzinfo=UTC) == at(3600)


def test_participants_view_orders_by_role_then_joining_time():
    log = timed([*live(), *joined("late-listener"), *speakers("spk"), *co_hosts("co"), *joined("last")])
    views = participants_view(fold(evolve, INITIAL, log))
    assert [(p.user_id, p.role) for p in views] == [
        (HOST, types.ROLE_HOST),
        ("co", types.ROLE_CO_HOST),
        ("spk", types.ROLE_SPEAKER),
        ("late-listener", types.ROLE_LISTENER),
        ("last", types.ROLE_LISTENER),
    ]
    assert views[0].joined_at.ToDatetime(tzinfo=UTC) == at(2)


def test_a_participants_order_is_the_key_of_their_message_so_page_tokens_keep_meaning_the_same():
    """ListParticipants pages over the participants and makes messages for the page alone; its
    token's key, made from the participant, is what the message's fields give (role, joined_at in
    microseconds since the epoch, user id), for times before and after the epoch and to the
    microsecond."""
    log = [*live(), *joined("a", "b", "c"), *speakers("b")]
    times = [at(n * 1.000001) for n in range(len(log))]
    times[-2] = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # "c" joined before the epoch
    state = fold(evolve, INITIAL, zip(log, times, strict=True))
    people = participants_in_order(state)
    assert [p.user_id for _, p in people] == [p.user_id for p in participants_view(state)]
    assert [p.user_id for _, p in people] == [HOST, "b", "a", "c"]  # c joined first, before the epoch
    for place, person in people:
        message = participant_message(person)
        assert (
            place
            == participant_order(person)
            == (
                ROLE_ORDER[message.role],
                message.joined_at.ToMicroseconds(),
                message.user_id,
            )
        )


def test_speak_requests_view_is_the_queue_oldest_first():
    state = fold(evolve, INITIAL, timed([*live(), *requested("b", "a")]))
    views = speak_requests_view(state)
    assert [r.user_id for r in views] == ["b", "a"]
    assert views[0].requested_at.ToDatetime(tzinfo=UTC) < views[1].requested_at.ToDatetime(tzinfo=UTC)


def test_a_directory_row_written_before_room_tokens_answers_with_its_versions_token():
    old = types.Space(space_id=SPACE, version=12).SerializeToString()  # as written before the field
    assert _stored(old).room_token == "12"
    current = types.Space(space_id=SPACE, version=12, room_token="12;l3=40").SerializeToString()
    assert _stored(current).room_token == "12;l3=40"
