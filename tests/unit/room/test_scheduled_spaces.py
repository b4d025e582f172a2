"""Scheduled Spaces: subscriptions, reminders in parts, rescheduling and expiry, as pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.domain.decider import SYSTEM_CLAIM, Context
from libs.domain.errors import DomainError, FailedPrecondition, PermissionDenied
from podium.room.v1 import room_events_pb2 as ev
from services.room.domain import commands as c
from services.room.domain.decide import decide
from services.room.domain.evolve import evolve
from services.room.domain.limits import RoomLimits
from services.room.domain.view import space_view
from tests.unit.room.given import HOST, NOW, SPACE, at, created, live, state_of, when

START = NOW + timedelta(hours=1)
SYSTEM = (SYSTEM_CLAIM,)
SOON, NOW_KIND, MOVED = (
    ev.REMINDER_KIND_STARTING_SOON,
    ev.REMINDER_KIND_STARTING_NOW,
    ev.REMINDER_KIND_RESCHEDULED,
)


def scheduled(start=START):
    event = created()
    event.scheduled_start.FromDatetime(start)
    return event


def subscribed(*users: str) -> list:
    return [ev.SpaceSubscribed(space_id=SPACE, user_id=u) for u in users]


def test_anyone_subscribes_to_a_scheduled_space_once_and_may_unsubscribe():
    history = [scheduled()]
    assert when(history, c.SubscribeToSpace(SPACE), actor="ann") == subscribed("ann")
    assert when([*history, *subscribed("ann")], c.SubscribeToSpace(SPACE), actor="ann") == []
    assert when([*history, *subscribed("ann")], c.UnsubscribeFromSpace(SPACE), actor="ann") == [
        ev.SpaceUnsubscribed(space_id=SPACE, user_id="ann")
    ]
    assert when(history, c.UnsubscribeFromSpace(SPACE), actor="ann") == []
    space = state_of(*history, *subscribed("ann", "bo", "ann"))
    assert space_view(space).subscriber_count == 2


@pytest.mark.parametrize("history", [[created()], live()], ids=["not scheduled", "live"])
def test_only_a_scheduled_space_can_be_subscribed_to(history):
    with pytest.raises(FailedPrecondition) as e:
        when(history, c.SubscribeToSpace(SPACE), actor="ann")
    assert e.value.reason == "SPACE_NOT_SCHEDULED"


def test_a_reminder_names_every_subscriber_in_parts_of_the_batch_size():
    users = [f"u{i:02d}" for i in range(5)]
    history = [scheduled(), *subscribed(*users)]
    limits = RoomLimits(reminder_batch=2)
    events = when(
        history, c.RemindSubscribers(SPACE, SOON, START), now=START - timedelta(minutes=15), limits=limits,
        claims=SYSTEM,
    )  # fmt: skip
    assert [(e.part, e.parts) for e in events] == [(1, 3), (2, 3), (3, 3)]
    assert [u for e in events for u in e.subscriber_user_ids] == users
    assert {(e.kind, e.title, e.host_user_id) for e in events} == {(SOON, "Audio", HOST)}
    assert all(e.scheduled_start.ToDatetime().replace(tzinfo=START.tzinfo) == START for e in events)


def test_each_reminder_is_sent_once_for_its_start_and_not_before_it_is_due():
    history = [scheduled(), *subscribed("ann")]
    early = START - timedelta(minutes=16)
    with pytest.raises(FailedPrecondition):
        when(history, c.RemindSubscribers(SPACE, SOON, START), now=early, claims=SYSTEM)
    sent = when(history, c.RemindSubscribers(SPACE, SOON, START), now=at(3600 - 900), claims=SYSTEM)
    assert len(sent) == 1
    assert when([*history, *sent], c.RemindSubscribers(SPACE, SOON, START), now=at(3600), claims=SYSTEM) == []
    assert (
        len(when([*history, *sent], c.RemindSubscribers(SPACE, NOW_KIND, START), now=START, claims=SYSTEM))
        == 1
    )
    with pytest.raises(PermissionDenied):
        when(history, c.RemindSubscribers(SPACE, SOON, START), now=START)


def test_a_space_with_no_subscribers_is_reminded_of_nobody_but_counts_as_reminded():
    (event,) = when([scheduled()], c.RemindSubscribers(SPACE, SOON, START), now=START, claims=SYSTEM)
    assert event.parts == 0 and not event.subscriber_user_ids
    assert when([scheduled(), event], c.RemindSubscribers(SPACE, SOON, START), now=START, claims=SYSTEM) == []


def test_moving_the_start_tells_subscribers_and_makes_the_reminders_due_again():
    later = START + timedelta(hours=2)
    soon = when(
        [scheduled(), *subscribed("ann")], c.RemindSubscribers(SPACE, SOON, START), now=START, claims=SYSTEM
    )
    history = [scheduled(), *subscribed("ann"), *soon]
    update, reminder = when(history, c.UpdateSpace(SPACE, scheduled_start=later))
    assert list(update.changed_fields) == ["scheduled_start"]
    assert reminder.kind == MOVED and list(reminder.subscriber_user_ids) == ["ann"]
    moved = [*history, update, reminder]
    # A reminder asked for the old start is stale; for the new start it is due again.
    assert when(moved, c.RemindSubscribers(SPACE, SOON, START), now=START, claims=SYSTEM) == []
    due = later - timedelta(minutes=15)
    assert len(when(moved, c.RemindSubscribers(SPACE, SOON, later), now=due, claims=SYSTEM)) == 1


def test_a_scheduled_space_not_started_within_the_window_ends_as_expired():
    history = [scheduled(), *subscribed("ann")]
    with pytest.raises(FailedPrecondition) as e:
        when(history, c.ExpireSpace(SPACE), now=START + timedelta(hours=1), claims=SYSTEM)
    assert e.value.reason == "SPACE_NOT_EXPIRED"
    (ended,) = when(history, c.ExpireSpace(SPACE), now=START + timedelta(hours=2), claims=SYSTEM)
    assert ended == ev.SpaceEnded(space_id=SPACE, reason=ev.END_REASON_EXPIRED)
    assert when([*history, ended], c.ExpireSpace(SPACE), now=START + timedelta(hours=3), claims=SYSTEM) == []
    assert when(live(), c.ExpireSpace(SPACE), now=START + timedelta(hours=3), claims=SYSTEM) == []
    with pytest.raises(PermissionDenied):
        when(history, c.ExpireSpace(SPACE), now=START + timedelta(hours=3))


# Random runs: subscriptions come and go, the host moves the start or starts the Space, the
# service's sweep asks for reminders and expiry at random moments. Whatever happens, each
# reminder goes out at most once for each scheduled start, never before it is due, names exactly
# the subscribers of that moment, and only a Space never started expires.

FANS = ["ann", "bo", "cy", "dee"]
actions = st.one_of(
    st.tuples(st.sampled_from(FANS), st.sampled_from([c.SubscribeToSpace, c.UnsubscribeFromSpace])),
    st.tuples(st.just("system"), st.sampled_from([SOON, NOW_KIND])),
    st.tuples(st.just("system"), st.just(c.ExpireSpace)),
    st.tuples(st.just(HOST), st.integers(1, 90)),  # move the start this many minutes after now
    st.tuples(st.just(HOST), st.just(c.StartSpace)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(actions, st.integers(0, 40)), min_size=5, max_size=40))
def test_reminders_go_out_once_per_start_when_due_to_the_subscribers_of_the_moment(script):
    limits = RoomLimits(reminder_batch=3)
    state, now = state_of(scheduled()), NOW
    sent: list[tuple[int, datetime]] = []
    for (actor, what), minutes in script:
        now += timedelta(minutes=minutes)
        if actor == "system" and what is c.ExpireSpace:
            command = c.ExpireSpace(SPACE)
        elif actor == "system":
            command = c.RemindSubscribers(SPACE, what, state.scheduled_start or START)
        elif isinstance(what, int):
            command = c.UpdateSpace(SPACE, scheduled_start=now + timedelta(minutes=what))
        else:
            command = what(SPACE)
        claims = frozenset({SYSTEM_CLAIM}) if actor == "system" else frozenset()
        try:
            events = decide(command, state, Context(actor, now, claims), limits)
        except DomainError:  # refused: nothing changes
            continue
        subscribers = sorted(state.subscribers)
        for event in events:
            if isinstance(event, ev.SpaceReminder):
                at = event.scheduled_start.ToDatetime(tzinfo=UTC)
                if event.kind != MOVED:
                    if event.part == 1 or event.parts == 0:
                        assert (event.kind, at) not in sent, "once per scheduled start"
                        sent.append((event.kind, at))
                    lead = limits.reminder_lead if event.kind == SOON else timedelta(0)
                    assert now >= at - lead, "never before it is due"
            if isinstance(event, ev.SpaceEnded):
                assert event.reason == ev.END_REASON_EXPIRED and state.started_at is None
            state = evolve(state, event, now)
        reminders = [e for e in events if isinstance(e, ev.SpaceReminder)]
        if reminders and reminders[0].parts:
            assert [u for e in reminders for u in e.subscriber_user_ids] == subscribers
            assert [(e.part, e.parts) for e in reminders] == [
                (i + 1, len(reminders)) for i in range(len(reminders))
            ]
        assert space_view(state).subscriber_count == len(state.subscribers)
