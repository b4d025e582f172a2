"""Who may be heard: the relay's pure view of a Space, given room and moderation events."""

from __future__ import annotations

from functools import reduce

from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.media_relay.domain.admission import (
    Admission,
    SpaceMedia,
    admit,
    admit_subscriber,
    evolve,
    membership_change,
)

S = "space-1"


def given(*events) -> SpaceMedia:
    return reduce(evolve, events, SpaceMedia())


LIVE = (
    rev.SpaceCreated(space_id=S, host_user_id="host"),
    rev.SpaceStarted(space_id=S, host_user_id="host"),
    rev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST),
    rev.ParticipantJoined(space_id=S, user_id="spk", role=rt.ROLE_LISTENER),
    rev.SpeakerAdded(space_id=S, user_id="spk"),
    rev.ParticipantJoined(space_id=S, user_id="fan", role=rt.ROLE_LISTENER),
)


def test_host_and_speakers_of_a_live_space_are_admitted_listeners_are_not():
    space = given(*LIVE)
    assert admit(space, "host") is Admission.ADMITTED
    assert admit(space, "spk") is Admission.ADMITTED
    assert admit(space, "fan") is Admission.NOT_A_SPEAKER
    assert admit(space, "stranger") is Admission.NOT_A_SPEAKER
    assert admit(None, "host") is Admission.UNKNOWN_SPACE


def test_a_scheduled_space_is_not_live_and_an_ended_one_is_ended():
    assert admit(given(LIVE[0]), "host") is Admission.NOT_LIVE
    assert admit(given(*LIVE, rev.SpaceEnded(space_id=S)), "host") is Admission.ENDED


def test_co_hosts_are_admitted_until_removed():
    space = given(*LIVE, rev.CoHostAdded(space_id=S, user_id="fan"))
    assert admit(space, "fan") is Admission.ADMITTED
    assert (
        admit(evolve(space, rev.CoHostRemoved(space_id=S, user_id="fan")), "fan") is Admission.NOT_A_SPEAKER
    )


def test_demotion_leaving_and_removal_stop_a_speaker():
    for event in (
        rev.SpeakerRemoved(space_id=S, user_id="spk"),
        rev.ParticipantLeft(space_id=S, user_id="spk"),
        mev.ParticipantRemoved(space_id=S, user_id="spk"),
    ):
        assert admit(given(*LIVE, event), "spk") is Admission.NOT_A_SPEAKER


def test_mutes_silence_until_lifted_and_only_hard_mutes_refuse_a_new_stream():
    hard = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_HOST))
    assert admit(hard, "spk") is Admission.HARD_MUTED
    auto = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_AUTO))
    assert admit(auto, "spk") is Admission.HARD_MUTED
    own = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_SELF))
    assert admit(own, "spk") is Admission.SELF_MUTED
    assert admit(evolve(hard, mev.ParticipantUnmuted(space_id=S, user_id="spk")), "spk") is Admission.ADMITTED


def test_recording_follows_creation_and_updates_of_that_field_only():
    space = given(rev.SpaceCreated(space_id=S, host_user_id="h", recording_enabled=True))
    assert space.recording_enabled
    title_only = evolve(space, rev.SpaceUpdated(space_id=S, changed_fields=["title"], title="x"))
    assert title_only.recording_enabled
    off = evolve(space, rev.SpaceUpdated(space_id=S, changed_fields=["recording_enabled"]))
    assert not off.recording_enabled


def test_evolve_is_pure():
    space = given(*LIVE)
    speakers = dict(space.speakers)
    evolve(space, rev.SpeakerRemoved(space_id=S, user_id="spk"))
    evolve(space, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_HOST))
    assert space.speakers == speakers and space.mutes == {}


# Who may hear a Space: subscriptions


def members_after(*events) -> set[str]:
    members: set[str] = set()
    for event in events:
        change = membership_change(event)
        if change is not None:
            user_id, joined = change
            (members.add if joined else members.discard)(user_id)
    return members


def test_a_gateway_hears_a_live_space_whoever_is_in_it():
    space = given(*LIVE)
    assert admit_subscriber(space, None, False) is Admission.ADMITTED
    assert admit_subscriber(given(LIVE[0]), None, False) is Admission.NOT_LIVE
    assert admit_subscriber(given(*LIVE, rev.SpaceEnded(space_id=S)), None, False) is Admission.ENDED
    assert admit_subscriber(None, None, False) is Admission.UNKNOWN_SPACE


def test_a_user_hears_a_live_space_only_while_in_it():
    space = given(*LIVE)
    assert admit_subscriber(space, "fan", "fan" in members_after(*LIVE)) is Admission.ADMITTED
    assert admit_subscriber(space, "stranger", False) is Admission.NOT_A_PARTICIPANT
    assert admit_subscriber(given(LIVE[0]), "fan", True) is Admission.NOT_LIVE


def test_leaving_and_removal_take_a_user_out_and_a_rejoin_brings_them_back():
    left = (*LIVE, rev.ParticipantLeft(space_id=S, user_id="fan"))
    removed = (*LIVE, mev.ParticipantRemoved(space_id=S, user_id="spk"))
    assert members_after(*left) == {"host", "spk"}
    assert members_after(*removed) == {"host", "fan"}
    assert members_after(*left, rev.ParticipantJoined(space_id=S, user_id="fan")) == {"host", "spk", "fan"}
    assert membership_change(rev.SpeakerAdded(space_id=S, user_id="fan")) is None
