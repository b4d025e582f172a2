"""Every role against every mutating command of room and moderation: allowed, or PERMISSION_DENIED.

Roles: host, co-host, speaker, listener, outsider (not in the Space) and
trust-and-safety (a token role, not in the Space).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.domain.decider import Context, fold
from libs.domain.errors import FailedPrecondition, PermissionDenied
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain import commands as mc
from services.moderation.domain.decide import decide_blocks, decide_space
from services.moderation.domain.evolve import evolve_space
from services.moderation.domain.state import BLOCKS_INITIAL, SPACE_INITIAL
from services.room.domain import commands as c
from services.room.domain.decide import decide
from services.room.domain.evolve import evolve
from services.room.domain.state import INITIAL

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = "s"
ACTORS = {
    "host": ("host", rt.ROLE_HOST, ()),
    "co-host": ("co", rt.ROLE_CO_HOST, ()),
    "speaker": ("spk", rt.ROLE_SPEAKER, ()),
    "listener": ("lis", rt.ROLE_LISTENER, ()),
    "outsider": ("out", rt.ROLE_UNSPECIFIED, ()),
    "trust-and-safety": ("ts", rt.ROLE_UNSPECIFIED, ("trust-and-safety",)),
}
MANAGERS = {"host", "co-host"}
EVERYONE = set(ACTORS)
PARTICIPANTS = {"host", "co-host", "speaker", "listener"}


def _live_room(created_only: bool = False):
    events = [ev.SpaceCreated(space_id=S, host_user_id="host", title="t")]
    if not created_only:
        events += [
            ev.SpaceStarted(space_id=S, host_user_id="host"),
            ev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST),
            *(
                ev.ParticipantJoined(space_id=S, user_id=u, role=rt.ROLE_LISTENER)
                for u in ("co", "spk", "lis", "x", "y")
            ),
            ev.CoHostAdded(space_id=S, user_id="co"),
            ev.SpeakerAdded(space_id=S, user_id="spk"),
            ev.SpeakerAdded(space_id=S, user_id="y"),
            ev.SpeakRequested(space_id=S, user_id="x"),
        ]
    return fold(evolve, INITIAL, [(e, NOW) for e in events])


ROOM_CASES = [
    ("UpdateSpace", lambda: c.UpdateSpace(S, title="new"), {"host"}, False),
    ("StartSpace", lambda: c.StartSpace(S), {"host"}, True),
    ("CancelSpace", lambda: c.CancelSpace(S), {"host"}, True),
    ("EndSpace", lambda: c.EndSpace(S), {"host"}, False),
    ("InviteUsers", lambda: c.InviteUsers(S, ("z",)), MANAGERS, False),
    ("CreateInviteLink", lambda: c.CreateInviteLink(S, "L", NOW + timedelta(hours=1)), MANAGERS, False),
    ("AddCoHost", lambda: c.AddCoHost(S, "lis"), {"host"}, False),
    ("RemoveCoHost", lambda: c.RemoveCoHost(S, "co"), {"host"}, False),
    ("InviteToSpeak", lambda: c.InviteToSpeak(S, "x"), MANAGERS, False),
    ("RevokeSpeaker", lambda: c.RevokeSpeaker(S, "y"), MANAGERS, False),
    ("ApproveSpeakRequest", lambda: c.ApproveSpeakRequest(S, "x"), MANAGERS, False),
    ("DenySpeakRequest", lambda: c.DenySpeakRequest(S, "x"), MANAGERS, False),
    ("RemoveParticipant", lambda: c.RemoveParticipant(S, "x"), MANAGERS, False),
    ("JoinSpace", lambda: c.JoinSpace(S), EVERYONE, False),
    ("LeaveSpace", lambda: c.LeaveSpace(S), EVERYONE, False),
    # Not a permission: only a listener can ask, so others fail its precondition instead.
    ("RequestToSpeak", lambda: c.RequestToSpeak(S), {"listener"}, False),
]
REFUSALS = {"RequestToSpeak": FailedPrecondition}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(
    ("name", "make", "allowed", "before_start"), ROOM_CASES, ids=[c[0] for c in ROOM_CASES]
)
def test_room_commands_by_role(actor, name, make, allowed, before_start):
    user, _role, claims = ACTORS[actor]
    state = _live_room(created_only=before_start)
    context = Context(user, NOW, frozenset(claims))
    if actor in allowed:
        decide(make(), state, context)  # no PermissionDenied (and no other rejection)
    else:
        with pytest.raises(REFUSALS.get(name, PermissionDenied)):
            decide(make(), state, context)


def _roles(actor: str, target_role: int) -> mc.Roles:
    return mc.Roles(actor=ACTORS[actor][1], target=target_role, host_user_id="host")


def _reported_space():
    reported = mev.SpaceReported(
        report_id="r1", space_id=S, reason=mt.REPORT_REASON_SPAM, reporter_user_id="lis"
    )
    muted = mev.ParticipantMuted(space_id=S, user_id="y", kind=mt.MUTE_KIND_HOST)
    return fold(evolve_space, SPACE_INITIAL, [(reported, NOW), (muted, NOW)])


MODERATION_CASES = [
    ("MuteParticipant", lambda a: mc.MuteParticipant(S, "spk2", _roles(a, rt.ROLE_SPEAKER)), MANAGERS),
    ("UnmuteParticipant", lambda a: mc.UnmuteParticipant(S, "y", _roles(a, rt.ROLE_SPEAKER)), MANAGERS),
    ("RemoveParticipant", lambda a: mc.RemoveParticipant(S, "x", "", _roles(a, rt.ROLE_LISTENER)), MANAGERS),
    ("ReportSpace", lambda a: mc.ReportSpace(S, "r2", mt.REPORT_REASON_SPAM, "", _roles(a, 0)), PARTICIPANTS),
    (
        "ReportParticipant",
        lambda a: mc.ReportParticipant(S, "r3", "x", mt.REPORT_REASON_SPAM, "", _roles(a, rt.ROLE_LISTENER)),
        PARTICIPANTS,
    ),
    ("ResolveReport", lambda a: mc.ResolveReport(S, "r1", mt.RESOLUTION_NO_ACTION, ""), {"trust-and-safety"}),
]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("name", "make", "allowed"), MODERATION_CASES, ids=[c[0] for c in MODERATION_CASES])
def test_moderation_commands_by_role(actor, name, make, allowed):
    user, _role, claims = ACTORS[actor]
    context = Context(user, NOW, frozenset(claims))
    if actor in allowed:
        decide_space(make(actor), _reported_space(), context)
    else:
        with pytest.raises(PermissionDenied):
            decide_space(make(actor), _reported_space(), context)


@pytest.mark.parametrize("actor", ACTORS)
def test_anyone_keeps_their_own_block_list(actor):
    user, _role, claims = ACTORS[actor]
    assert decide_blocks(mc.BlockUser("someone-else"), BLOCKS_INITIAL, Context(user, NOW, frozenset(claims)))
