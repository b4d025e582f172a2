"""Who may be heard: the relay's rules over the shared membership fold, given room and moderation events."""

from __future__ import annotations

from libs.domain.membership import SpaceMembers
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.media_relay.domain.admission import Admission, admit, admit_subscriber, recording_after

S = "space-1"


def given(*events) -> SpaceMembers:
    space = SpaceMembers()
    for event in events:
        space.apply(event, 0)
    return space


def heard(space: SpaceMembers | None, user_id: str) -> Admission:
    return admit(space.roster, space.member(user_id)) if space is not None else admit(None, None)


def hears(space: SpaceMembers | None, user_id: str | None) -> Admission:
    if space is None:
        return admit_subscriber(None, None, user_id)
    return admit_subscriber(space.roster, space.member(user_id or ""), user_id)


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
    assert heard(space, "host") is Admission.ADMITTED
    assert heard(space, "spk") is Admission.ADMITTED
    assert heard(space, "fan") is Admission.NOT_A_SPEAKER
    assert heard(space, "stranger") is Admission.NOT_A_SPEAKER
    assert heard(None, "host") is Admission.UNKNOWN_SPACE


def test_a_scheduled_space_is_not_live_and_an_ended_one_is_ended():
    assert heard(given(LIVE[0]), "host") is Admission.NOT_LIVE
    assert heard(given(*LIVE, rev.SpaceEnded(space_id=S)), "host") is Admission.ENDED


def test_co_hosts_are_admitted_until_removed():
    space = given(*LIVE, rev.CoHostAdded(space_id=S, user_id="fan"))
    assert heard(space, "fan") is Admission.ADMITTED
    space.apply(rev.CoHostRemoved(space_id=S, user_id="fan"), 0)
    assert heard(space, "fan") is Admission.NOT_A_SPEAKER


def test_demotion_leaving_and_removal_stop_a_speaker():
    for event in (
        rev.SpeakerRemoved(space_id=S, user_id="spk"),
        rev.ParticipantLeft(space_id=S, user_id="spk"),
        mev.ParticipantRemoved(space_id=S, user_id="spk"),
    ):
        assert heard(given(*LIVE, event), "spk") is Admission.NOT_A_SPEAKER


def test_mutes_silence_until_lifted_and_only_hard_mutes_refuse_a_new_stream():
    hard = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_HOST))
    assert heard(hard, "spk") is Admission.HARD_MUTED
    auto = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_AUTO))
    assert heard(auto, "spk") is Admission.HARD_MUTED
    own = given(*LIVE, mev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_SELF))
    assert heard(own, "spk") is Admission.SELF_MUTED
    hard.apply(mev.ParticipantUnmuted(space_id=S, user_id="spk"), 0)
    assert heard(hard, "spk") is Admission.ADMITTED


def test_recording_follows_creation_and_updates_of_that_field_only():
    on = recording_after(False, rev.SpaceCreated(space_id=S, host_user_id="h", recording_enabled=True))
    assert on
    assert recording_after(on, rev.SpaceUpdated(space_id=S, changed_fields=["title"], title="x"))
    assert not recording_after(on, rev.SpaceUpdated(space_id=S, changed_fields=["recording_enabled"]))


# Who may hear a Space: subscriptions


def test_a_gateway_hears_a_live_space_whoever_is_in_it():
    assert hears(given(*LIVE), None) is Admission.ADMITTED
    assert hears(given(LIVE[0]), None) is Admission.NOT_LIVE
    assert hears(given(*LIVE, rev.SpaceEnded(space_id=S)), None) is Admission.ENDED
    assert hears(None, None) is Admission.UNKNOWN_SPACE


def test_a_user_hears_a_live_space_only_while_in_it():
    space = given(*LIVE)
    assert hears(space, "fan") is Admission.ADMITTED
    assert hears(space, "stranger") is Admission.NOT_A_PARTICIPANT
    assert hears(given(LIVE[0]), "fan") is Admission.NOT_LIVE


def test_leaving_and_removal_take_a_user_out_and_a_rejoin_brings_them_back():
    def listening(space: SpaceMembers) -> set[str]:
        return {u for u in ("host", "spk", "fan") if hears(space, u) is Admission.ADMITTED}

    left = (*LIVE, rev.ParticipantLeft(space_id=S, user_id="fan"))
    removed = (*LIVE, mev.ParticipantRemoved(space_id=S, user_id="spk"))
    assert listening(given(*left)) == {"host", "spk"}
    assert listening(given(*removed)) == {"host", "fan"}
    assert listening(given(*left, rev.ParticipantJoined(space_id=S, user_id="fan"))) == {"host", "spk", "fan"}
