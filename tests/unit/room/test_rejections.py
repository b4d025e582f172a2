"""Every way each room command is refused: given events, when a command, then this error and reason.

One row per rule, so a reader can check the table against the rules and a
broken rule names itself in the test id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from libs.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.limits import RoomLimits
from tests.unit.room.given import (
    HOST,
    NOW,
    SPACE,
    at,
    cancelled,
    co_hosts,
    created,
    ended,
    invite_link,
    joined,
    left,
    live,
    requested,
    speakers,
    when,
)

SYSTEM = ("system",)
INVITE_ONLY = types.JOIN_POLICY_INVITED_ONLY
# A live Space with a co-host, a speaker, a listener with a pending request and a plain listener.
BUSY = [*live(), *co_hosts("co"), *speakers("spk"), *requested("asker"), *joined("lis")]
UNATTENDED = [*live(), *joined("lis"), left(HOST)]


@dataclass(frozen=True)
class Refusal:
    given: list
    command: object
    actor: str
    error: type[DomainError]
    reason: str
    claims: tuple[str, ...] = ()
    limits: RoomLimits = field(default_factory=RoomLimits)
    now: object = NOW


def refusal(given, command, actor, error, reason, **kw) -> Refusal:
    return Refusal(given, command, actor, error, reason, **kw)


CASES = {
    # Lifecycle
    "CreateSpace/exists": refusal(
        [created()], c.CreateSpace(SPACE, "t"), HOST, AlreadyExists, "SPACE_EXISTS"
    ),
    "CreateSpace/invalid": refusal([], c.CreateSpace(SPACE, " "), HOST, InvalidArgument, "INVALID_ARGUMENT"),
    "UpdateSpace/not-host": refusal(
        BUSY, c.UpdateSpace(SPACE, title="x"), "co", PermissionDenied, "NOT_HOST"
    ),
    "UpdateSpace/ended": refusal(
        ended(), c.UpdateSpace(SPACE, title="x"), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "UpdateSpace/cancelled": refusal(
        cancelled(), c.UpdateSpace(SPACE, title="x"), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "UpdateSpace/reschedule-live": refusal(
        live(), c.UpdateSpace(SPACE, scheduled_start=at(60)), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "UpdateSpace/schedule-in-past": refusal(
        [created()], c.UpdateSpace(SPACE, scheduled_start=at(-1)), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "UpdateSpace/unspecified-policy": refusal(
        [created()], c.UpdateSpace(SPACE, join_policy=0), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "UpdateSpace/blank-title": refusal(
        [created()], c.UpdateSpace(SPACE, title="  "), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "UpdateSpace/long-description": refusal(
        [created()], c.UpdateSpace(SPACE, description="d" * 501), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "StartSpace/not-host": refusal([created()], c.StartSpace(SPACE), "ann", PermissionDenied, "NOT_HOST"),
    "StartSpace/cancelled": refusal(
        cancelled(), c.StartSpace(SPACE), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "StartSpace/ended": refusal(ended(), c.StartSpace(SPACE), HOST, FailedPrecondition, "SPACE_ENDED"),
    "EndSpace/not-host": refusal(BUSY, c.EndSpace(SPACE), "co", PermissionDenied, "NOT_HOST"),
    "EndSpace/created": refusal([created()], c.EndSpace(SPACE), HOST, FailedPrecondition, "SPACE_NOT_LIVE"),
    "EndSpace/scheduled": refusal(
        [created(scheduled_start=at(60))], c.EndSpace(SPACE), HOST, FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "EndSpace/cancelled": refusal(cancelled(), c.EndSpace(SPACE), HOST, FailedPrecondition, "SPACE_ENDED"),
    "CancelSpace/not-host": refusal([created()], c.CancelSpace(SPACE), "ann", PermissionDenied, "NOT_HOST"),
    "CancelSpace/live": refusal(live(), c.CancelSpace(SPACE), HOST, FailedPrecondition, "SPACE_STARTED"),
    "CancelSpace/ended": refusal(ended(), c.CancelSpace(SPACE), HOST, FailedPrecondition, "SPACE_ENDED"),
    "EndAbandonedSpace/not-system": refusal(
        UNATTENDED, c.EndAbandonedSpace(SPACE), HOST, PermissionDenied, "SYSTEM_ONLY", now=at(3600)
    ),
    "EndAbandonedSpace/host-present": refusal(
        BUSY,
        c.EndAbandonedSpace(SPACE),
        "sys",
        FailedPrecondition,
        "SPACE_ATTENDED",
        claims=SYSTEM,
        now=at(3600),
    ),
    "EndAbandonedSpace/within-grace": refusal(
        UNATTENDED,
        c.EndAbandonedSpace(SPACE),
        "sys",
        FailedPrecondition,
        "SPACE_ATTENDED",
        claims=SYSTEM,
        now=at(299),
    ),
    "EndAbandonedSpace/not-live": refusal(
        [created()], c.EndAbandonedSpace(SPACE), "sys", FailedPrecondition, "SPACE_NOT_LIVE", claims=SYSTEM
    ),
    "EndAbandonedSpace/ended": refusal(
        ended(), c.EndAbandonedSpace(SPACE), "sys", FailedPrecondition, "SPACE_ENDED", claims=SYSTEM
    ),
    # Membership
    "JoinSpace/created": refusal(
        [created()], c.JoinSpace(SPACE), "ann", FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "JoinSpace/scheduled": refusal(
        [created(scheduled_start=at(60))], c.JoinSpace(SPACE), HOST, FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "JoinSpace/ended": refusal(ended(), c.JoinSpace(SPACE), "ann", FailedPrecondition, "SPACE_ENDED"),
    "JoinSpace/cancelled": refusal(cancelled(), c.JoinSpace(SPACE), "ann", FailedPrecondition, "SPACE_ENDED"),
    "JoinSpace/removed": refusal(
        [*live(), *joined("ann"), left("ann", ev.LEAVE_REASON_REMOVED)],
        c.JoinSpace(SPACE),
        "ann",
        PermissionDenied,
        "REMOVED_FROM_SPACE",
    ),
    "JoinSpace/barred-by-moderation": refusal(
        live(), c.JoinSpace(SPACE, barred=True), "ann", PermissionDenied, "REMOVED_FROM_SPACE"
    ),
    "JoinSpace/blocked-by-host": refusal(
        live(), c.JoinSpace(SPACE, blocked_by=frozenset({HOST})), "ann", PermissionDenied, "BLOCKED"
    ),
    "JoinSpace/blocked-by-co-host": refusal(
        [*live(), *co_hosts("co")],
        c.JoinSpace(SPACE, blocked_by=frozenset({"co"})),
        "ann",
        PermissionDenied,
        "BLOCKED",
    ),
    "JoinSpace/not-invited": refusal(
        live(INVITE_ONLY), c.JoinSpace(SPACE), "ann", PermissionDenied, "NOT_INVITED"
    ),
    "JoinSpace/unknown-link": refusal(
        live(INVITE_ONLY), c.JoinSpace(SPACE, "L9"), "ann", PermissionDenied, "INVITE_OTHER_SPACE"
    ),
    "JoinSpace/expired-link": refusal(
        [*live(INVITE_ONLY), invite_link("L1", at(60))],
        c.JoinSpace(SPACE, "L1"),
        "ann",
        PermissionDenied,
        "INVITE_EXPIRED",
        now=at(60),
    ),
    "TimeOutParticipant/not-system": refusal(
        BUSY, c.TimeOutParticipant(SPACE, "lis"), HOST, PermissionDenied, "SYSTEM_ONLY"
    ),
    "EvictListeners/not-system": refusal(
        BUSY, c.EvictListeners(SPACE, ("lis",)), HOST, PermissionDenied, "SYSTEM_ONLY"
    ),
    "GrowListenerShards/not-system": refusal(
        BUSY, c.GrowListenerShards(SPACE, 2), HOST, PermissionDenied, "SYSTEM_ONLY"
    ),
    "GrowListenerShards/not-live": refusal(
        [created()],
        c.GrowListenerShards(SPACE, 2),
        "sys",
        FailedPrecondition,
        "SPACE_NOT_LIVE",
        claims=SYSTEM,
    ),
    "GrowListenerShards/ended": refusal(
        ended(), c.GrowListenerShards(SPACE, 2), "sys", FailedPrecondition, "SPACE_ENDED", claims=SYSTEM
    ),
    "GrowListenerShards/not-a-power-of-two": refusal(
        BUSY, c.GrowListenerShards(SPACE, 3), "sys", InvalidArgument, "INVALID_ARGUMENT", claims=SYSTEM
    ),
    "GrowListenerShards/lanes-not-a-power-of-two": refusal(
        BUSY,
        c.GrowListenerShards(SPACE, 4, lanes=3),
        "sys",
        InvalidArgument,
        "INVALID_ARGUMENT",
        claims=SYSTEM,
    ),
    "GrowListenerShards/over-the-limit": refusal(
        BUSY, c.GrowListenerShards(SPACE, 512), "sys", InvalidArgument, "INVALID_ARGUMENT", claims=SYSTEM
    ),
    "ReleaseLeaver/not-system": refusal(
        BUSY, c.ReleaseLeaver(SPACE, "spk"), HOST, PermissionDenied, "SYSTEM_ONLY"
    ),
    "RemoveParticipant/listener": refusal(
        BUSY, c.RemoveParticipant(SPACE, "asker"), "lis", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "RemoveParticipant/speaker": refusal(
        BUSY, c.RemoveParticipant(SPACE, "lis"), "spk", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "RemoveParticipant/the-host": refusal(
        BUSY, c.RemoveParticipant(SPACE, HOST), "co", PermissionDenied, "CANNOT_REMOVE_HOST"
    ),
    "RemoveParticipant/the-host-by-system": refusal(
        BUSY, c.RemoveParticipant(SPACE, HOST), "sys", PermissionDenied, "CANNOT_REMOVE_HOST", claims=SYSTEM
    ),
    "RemoveParticipant/self": refusal(
        BUSY, c.RemoveParticipant(SPACE, "co"), "co", FailedPrecondition, "CANNOT_REMOVE_SELF"
    ),
    "RemoveParticipant/absent": refusal(
        BUSY, c.RemoveParticipant(SPACE, "nobody"), HOST, FailedPrecondition, "NOT_A_PARTICIPANT"
    ),
    # Invites
    "InviteUsers/listener": refusal(
        BUSY, c.InviteUsers(SPACE, ("x",)), "lis", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "InviteUsers/ended": refusal(
        ended(), c.InviteUsers(SPACE, ("x",)), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "InviteUsers/none": refusal(live(), c.InviteUsers(SPACE, ()), HOST, InvalidArgument, "INVALID_ARGUMENT"),
    "InviteUsers/too-many": refusal(
        live(),
        c.InviteUsers(SPACE, tuple(f"u{i}" for i in range(101))),
        HOST,
        InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    "InviteUsers/blank-id": refusal(
        live(), c.InviteUsers(SPACE, ("ann", " ")), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "InviteUsers/long-id": refusal(
        live(), c.InviteUsers(SPACE, ("u" * 129,)), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "CreateInviteLink/speaker": refusal(
        BUSY, c.CreateInviteLink(SPACE, "L", at(60)), "spk", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "CreateInviteLink/cancelled": refusal(
        cancelled(), c.CreateInviteLink(SPACE, "L", at(60)), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "CreateInviteLink/expired": refusal(
        live(), c.CreateInviteLink(SPACE, "L", NOW), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    "CreateInviteLink/too-long": refusal(
        live(),
        c.CreateInviteLink(SPACE, "L", NOW + timedelta(days=7, seconds=1)),
        HOST,
        InvalidArgument,
        "INVALID_ARGUMENT",
    ),
    "CreateInviteLink/no-id": refusal(
        live(), c.CreateInviteLink(SPACE, "", at(60)), HOST, InvalidArgument, "INVALID_ARGUMENT"
    ),
    # Roles
    "AddCoHost/co-host": refusal(BUSY, c.AddCoHost(SPACE, "lis"), "co", PermissionDenied, "NOT_HOST"),
    "AddCoHost/not-live": refusal(
        [created()], c.AddCoHost(SPACE, "x"), HOST, FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "AddCoHost/the-host": refusal(BUSY, c.AddCoHost(SPACE, HOST), HOST, FailedPrecondition, "ALREADY_HOST"),
    "AddCoHost/absent": refusal(BUSY, c.AddCoHost(SPACE, "x"), HOST, FailedPrecondition, "NOT_A_PARTICIPANT"),
    "AddCoHost/limit": refusal(
        BUSY,
        c.AddCoHost(SPACE, "lis"),
        HOST,
        ResourceExhausted,
        "CO_HOST_LIMIT_REACHED",
        limits=RoomLimits(max_co_hosts=1),
    ),
    "RemoveCoHost/co-host": refusal(BUSY, c.RemoveCoHost(SPACE, "co"), "co", PermissionDenied, "NOT_HOST"),
    "RemoveCoHost/not-co-host": refusal(
        BUSY, c.RemoveCoHost(SPACE, "spk"), HOST, FailedPrecondition, "NOT_A_CO_HOST"
    ),
    "RemoveCoHost/ended": refusal(
        ended(), c.RemoveCoHost(SPACE, "co"), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "InviteToSpeak/speaker": refusal(
        BUSY, c.InviteToSpeak(SPACE, "lis"), "spk", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "InviteToSpeak/not-live": refusal(
        [created()], c.InviteToSpeak(SPACE, "lis"), HOST, FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "InviteToSpeak/absent": refusal(
        BUSY, c.InviteToSpeak(SPACE, "x"), HOST, FailedPrecondition, "NOT_A_PARTICIPANT"
    ),
    "InviteToSpeak/co-host": refusal(
        BUSY, c.InviteToSpeak(SPACE, "co"), HOST, FailedPrecondition, "ALREADY_A_VOICE"
    ),
    "InviteToSpeak/the-host": refusal(
        BUSY, c.InviteToSpeak(SPACE, HOST), "co", FailedPrecondition, "ALREADY_A_VOICE"
    ),
    "InviteToSpeak/limit": refusal(
        BUSY,
        c.InviteToSpeak(SPACE, "lis"),
        "co",
        ResourceExhausted,
        "SPEAKER_LIMIT_REACHED",
        limits=RoomLimits(max_speakers=1),
    ),
    "RevokeSpeaker/listener": refusal(
        BUSY, c.RevokeSpeaker(SPACE, "spk"), "lis", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "RevokeSpeaker/not-speaker": refusal(
        BUSY, c.RevokeSpeaker(SPACE, "lis"), HOST, FailedPrecondition, "NOT_A_SPEAKER"
    ),
    "RevokeSpeaker/ended": refusal(
        ended(), c.RevokeSpeaker(SPACE, "spk"), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "StepDown/host": refusal(BUSY, c.StepDown(SPACE), HOST, FailedPrecondition, "IS_HOST"),
    "StepDown/not-live": refusal([created()], c.StepDown(SPACE), "spk", FailedPrecondition, "SPACE_NOT_LIVE"),
    # Requests to speak
    "RequestToSpeak/not-live": refusal(
        [created()], c.RequestToSpeak(SPACE), "lis", FailedPrecondition, "SPACE_NOT_LIVE"
    ),
    "RequestToSpeak/ended": refusal(
        ended(), c.RequestToSpeak(SPACE), "lis", FailedPrecondition, "SPACE_ENDED"
    ),
    "RequestToSpeak/absent": refusal(
        BUSY, c.RequestToSpeak(SPACE), "x", FailedPrecondition, "NOT_A_PARTICIPANT"
    ),
    "RequestToSpeak/speaker": refusal(
        BUSY, c.RequestToSpeak(SPACE), "spk", FailedPrecondition, "ALREADY_A_VOICE"
    ),
    "RequestToSpeak/co-host": refusal(
        BUSY, c.RequestToSpeak(SPACE), "co", FailedPrecondition, "ALREADY_A_VOICE"
    ),
    "RequestToSpeak/host": refusal(
        BUSY, c.RequestToSpeak(SPACE), HOST, FailedPrecondition, "ALREADY_A_VOICE"
    ),
    "RequestToSpeak/queue-full": refusal(
        BUSY,
        c.RequestToSpeak(SPACE),
        "lis",
        ResourceExhausted,
        "REQUEST_QUEUE_FULL",
        limits=RoomLimits(max_speak_requests=1),
    ),
    "ApproveSpeakRequest/listener": refusal(
        BUSY, c.ApproveSpeakRequest(SPACE, "asker"), "lis", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "ApproveSpeakRequest/no-request": refusal(
        BUSY, c.ApproveSpeakRequest(SPACE, "lis"), HOST, FailedPrecondition, "NO_SPEAK_REQUEST"
    ),
    "ApproveSpeakRequest/limit": refusal(
        BUSY,
        c.ApproveSpeakRequest(SPACE, "asker"),
        "co",
        ResourceExhausted,
        "SPEAKER_LIMIT_REACHED",
        limits=RoomLimits(max_speakers=1),
    ),
    "ApproveSpeakRequest/ended": refusal(
        ended(), c.ApproveSpeakRequest(SPACE, "asker"), HOST, FailedPrecondition, "SPACE_ENDED"
    ),
    "DenySpeakRequest/speaker": refusal(
        BUSY, c.DenySpeakRequest(SPACE, "asker"), "spk", PermissionDenied, "NOT_HOST_OR_CO_HOST"
    ),
    "DenySpeakRequest/no-request": refusal(
        BUSY, c.DenySpeakRequest(SPACE, "lis"), "co", FailedPrecondition, "NO_SPEAK_REQUEST"
    ),
    "DenySpeakRequest/not-live": refusal(
        [created()], c.DenySpeakRequest(SPACE, "x"), HOST, FailedPrecondition, "SPACE_NOT_LIVE"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_refused(case: Refusal):
    with pytest.raises(case.error) as refused:
        when(case.given, case.command, case.actor, now=case.now, limits=case.limits, claims=case.claims)
    assert refused.value.reason == case.reason
    assert refused.value.message, "every refusal says what to do"


EVERY_COMMAND = [
    c.CreateSpace(SPACE, "t"),
    c.UpdateSpace(SPACE, title="t"),
    c.StartSpace(SPACE),
    c.EndSpace(SPACE),
    c.CancelSpace(SPACE),
    c.EndAbandonedSpace(SPACE),
    c.JoinSpace(SPACE),
    c.LeaveSpace(SPACE),
    c.TimeOutParticipant(SPACE, "u"),
    c.RemoveParticipant(SPACE, "u"),
    c.EvictListeners(SPACE, ("u",)),
    c.GrowListenerShards(SPACE, 2),
    c.WithShardMembers(c.InviteToSpeak(SPACE, "u"), (("u", at(0)),)),
    c.ReleaseLeaver(SPACE, "u"),
    c.InviteUsers(SPACE, ("u",)),
    c.CreateInviteLink(SPACE, "L", at(60)),
    c.AddCoHost(SPACE, "u"),
    c.RemoveCoHost(SPACE, "u"),
    c.InviteToSpeak(SPACE, "u"),
    c.RevokeSpeaker(SPACE, "u"),
    c.StepDown(SPACE),
    c.RequestToSpeak(SPACE),
    c.WithdrawSpeakRequest(SPACE),
    c.ApproveSpeakRequest(SPACE, "u"),
    c.DenySpeakRequest(SPACE, "u"),
    c.SubscribeToSpace(SPACE),
    c.UnsubscribeFromSpace(SPACE),
    c.RemindSubscribers(SPACE, 1, at(3600)),
    c.ExpireSpace(SPACE),
]


def test_every_command_type_is_covered_here_and_known_to_decide():
    declared = {cls for cls in vars(c).values() if isinstance(cls, type) and cls.__module__ == c.__name__}
    assert {type(command) for command in EVERY_COMMAND} == declared


@pytest.mark.parametrize("command", EVERY_COMMAND[1:], ids=lambda cmd: type(cmd).__name__)
def test_every_command_but_create_on_an_unknown_space_is_not_found(command):
    with pytest.raises(NotFound) as refused:
        when([], command, HOST, claims=SYSTEM)
    assert refused.value.reason == "SPACE_NOT_FOUND"


def test_an_unknown_command_is_a_programming_error():
    with pytest.raises(TypeError):
        when(live(), object())
