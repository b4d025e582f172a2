"""Scheduled Spaces: subscriptions, reminders in parts, rescheduling and expiry, as pure decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.domain.decider import SYSTEM_CLAIM
from libs.domain.errors import FailedPrecondition, PermissionDenied
from podium.room.v1 import room_events_pb2 as ev
from services.room.domain import commands as c
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
