"""evolve: what each event does to a Space, and that it never touches the state it was given."""

from __future__ import annotations

import copy

from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.evolve import evolve
from services.room.domain.state import INITIAL, Participant
from tests.unit.room.given import NOW, SPACE, at, co_hosts, live, speakers, state_of


def test_role_changes_keep_participants_as_participant_values():
    state = state_of(*live(), *speakers("s"), *co_hosts("c"))
    assert state.participants["s"] == Participant("s", types.ROLE_SPEAKER, NOW)
    assert state.participants["c"] == Participant("c", types.ROLE_CO_HOST, NOW)
    assert state == state_of(*live(), *speakers("s"), *co_hosts("c"))
    repr(state)


def test_evolve_never_changes_the_state_it_is_given():
    before = state_of(*live(), *speakers("s"), *co_hosts("c"))
    kept = copy.deepcopy(before)
    for event in [
        ev.SpeakerRemoved(space_id=SPACE, user_id="s"),
        ev.CoHostRemoved(space_id=SPACE, user_id="c"),
        ev.ParticipantLeft(space_id=SPACE, user_id="s"),
        ev.SpeakRequested(space_id=SPACE, user_id="s"),
        ev.UsersInvited(space_id=SPACE, user_ids=["x"]),
        ev.InviteLinkCreated(space_id=SPACE, link_id="L"),
        ev.SpaceEnded(space_id=SPACE),
    ]:
        evolve(before, event, at(1))
        assert before == kept


def test_every_event_advances_the_version_and_unknown_events_change_nothing_else():
    state = state_of(*live())
    assert state.version == 3
    after = evolve(state, types.Participant(user_id="not-a-room-event"), at(1))
    assert after.version == 4
    assert after == type(state)(**{**state.__dict__, "version": 4})
    assert evolve(INITIAL, types.Space(), NOW).exists is False
