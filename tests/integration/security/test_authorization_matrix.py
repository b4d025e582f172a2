"""Who may call what, by kind of token and by role, over real gRPC: token kind x role x RPC.

Every RPC of every service (enumerated from the generated descriptors, so a new RPC fails here
until it has a row) x every caller: the host, a co-host, a speaker and a listener of a live Space,
a stranger (a user not in it), trust and safety (a user token with that role, not in it) and a
client gateway (a gateway token). Each cell sends a well-formed request aimed at a real Space
where those roles hold, built through the room's API, and asserts the answer: `denied` is
PERMISSION_DENIED with the ErrorInfo reason in the table; anything else is allowed, pinned to the
code (and reason) the domain gives that caller, so an allowed cell is never a request the service
refused for being malformed.

Cells are independent of each other and of their order. Each RPC gets Spaces of its own, and
each allowed cell of an RPC that changes the Space (ends it, leaves it, removes, mutes, changes a
role, deletes the replay) gets a Space of its own; all are built and called concurrently. Before
a cell relies on another service's view of the Space, the Space's setup waits for a positive
marker that the view has caught up: moderation is given the room's last version (`room_version`),
the relay has admitted a speaker promoted last, presence has accepted an entry for the Space, and
replay has said READY.

The table agrees with the domain's own matrix (tests/unit/authorization/test_roles_matrix.py)
wherever both have the cell; docs/security.md, "Two kinds of callers" and "Authorization".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from podium.media.v1 import media_service_pb2 as mpb
from podium.moderation.v1 import moderation_service_pb2 as mdpb
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.presence.v1 import presence_service_pb2 as ppb
from podium.presence.v1 import presence_types_pb2 as pt
from podium.replay.v1 import replay_service_pb2 as rppb
from podium.replay.v1 import replay_service_pb2_grpc
from podium.replay.v1 import replay_types_pb2 as rpt
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_types_pb2 as rt
from podium.webhooks.v1 import webhook_service_pb2 as whpb
from podium.webhooks.v1 import webhook_service_pb2_grpc
from tests.integration.clients import ModerationClient, PresenceGateway, RoomClient, error_reason
from tests.integration.media_relay.gateway import Publisher, frame, publish_when_admitted
from tests.support.auth import bearer, gateway_bearer
from tests.support.channels import open_channel
from tests.support.opus_tones import tone_packets

pytestmark = pytest.mark.integration

SERVICES = {
    "room": (rpb, "RoomService"),
    "moderation": (mdpb, "ModerationService"),
    "presence": (ppb, "PresenceService"),
    "media-relay": (mpb, "MediaRelayService"),
    "replay": (rppb, "ReplayService"),
    "webhooks": (whpb, "WebhookService"),
}

# The callers, and the other people a Space holds (the targets of calls about someone).
HOST, CO_HOST, SPEAKER, LISTENER = "host", "co-host", "speaker", "listener"
STRANGER, SAFETY, GATEWAY = "stranger", "trust-and-safety", "gateway"
CALLERS = (HOST, CO_HOST, SPEAKER, LISTENER, STRANGER, SAFETY, GATEWAY)
LISTENER_2, SPEAKER_2, REQUESTER = "listener-2", "speaker-2", "requester"
MEMBERS = (CO_HOST, SPEAKER, LISTENER, LISTENER_2, SPEAKER_2, REQUESTER)


@dataclass(frozen=True)
class Cell:
    """What a caller gets: PERMISSION_DENIED (denied) or another answer (allowed), and its reason."""

    code: grpc.StatusCode
    reason: str = ""

    @property
    def denied(self) -> bool:
        return self.code == grpc.StatusCode.PERMISSION_DENIED

    def __str__(self) -> str:
        return f"{'denied' if self.denied else 'allowed'} ({self.code.name} {self.reason})".strip()


def denied(reason: str) -> Cell:
    return Cell(grpc.StatusCode.PERMISSION_DENIED, reason)


def refused(reason: str) -> Cell:
    """Allowed, and then refused by the domain for a reason that is not the caller's authority."""
    return Cell(grpc.StatusCode.FAILED_PRECONDITION, reason)


OK = Cell(grpc.StatusCode.OK)
USER_TOKEN = denied("USER_TOKEN_REQUIRED")
GATEWAY_TOKEN = denied("GATEWAY_TOKEN_REQUIRED")
NOT_HOST = denied("NOT_HOST")
NOT_MANAGER = denied("NOT_HOST_OR_CO_HOST")
NOT_IN = denied("NOT_A_PARTICIPANT")
NOT_TS = denied("NOT_TRUST_AND_SAFETY")
NOT_VOICE = denied("NOT_A_SPEAKER")
HIDDEN = denied("REPLAY_NOT_VISIBLE")
#: Someone else's webhook is as good as none: NOT_FOUND, so ids reveal nothing.
NOT_YOURS = Cell(grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND")

# The matrix. Room, moderation, presence and the relay aim at a live public Space; replay at the
# recording of an invite-only Space those roles held, ended and finalized.
# fmt: off
MATRIX: dict[str, tuple[Cell, ...]] = {
    #                              host      co-host   speaker   listener  stranger  t&s       gateway
    "room.CreateSpace":           (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.UpdateSpace":           (OK,       NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.GetSpace":              (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.ListSpaces":            (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.SearchSpaces":          (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.BatchGetSpaces":        (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    # The live Space cannot be subscribed to: every user token is let through to that refusal.
    "room.SubscribeToSpace":      (*[refused("SPACE_NOT_SCHEDULED")] * 6,                       USER_TOKEN),
    "room.UnsubscribeFromSpace":  (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.StartSpace":            (OK,       NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.EndSpace":              (OK,       NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.CancelSpace":           (refused("SPACE_STARTED"),
                                             NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.JoinSpace":             (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.LeaveSpace":            (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.ListParticipants":      (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.GetParticipant":        (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.InviteUsers":           (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.CreateInviteLink":      (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.AddCoHost":             (OK,       NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.RemoveCoHost":          (OK,       NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, NOT_HOST, USER_TOKEN),
    "room.InviteToSpeak":         (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.RevokeSpeaker":         (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    # Nobody's permission: each steps down from their own role (the host cannot), if any.
    "room.StepDown":              (refused("IS_HOST"),
                                             OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    # Not a permission either: only a listener can ask (as in the unit matrix).
    "room.RequestToSpeak":        (refused("ALREADY_A_VOICE"), refused("ALREADY_A_VOICE"),
                                   refused("ALREADY_A_VOICE"), OK,
                                   refused("NOT_A_PARTICIPANT"), refused("NOT_A_PARTICIPANT"), USER_TOKEN),
    "room.WithdrawSpeakRequest":  (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "room.ListSpeakRequests":     (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.ApproveSpeakRequest":   (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.DenySpeakRequest":      (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "room.GetMediaEndpoint":      (OK,       OK,       OK,       OK,       OK,       OK,       OK),
    "moderation.MuteParticipant": (OK,       OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "moderation.UnmuteParticipant": (OK,     OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "moderation.RemoveParticipant": (OK,     OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, USER_TOKEN),
    "moderation.BlockUser":       (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "moderation.UnblockUser":     (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "moderation.ListBlockedUsers": (OK,      OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "moderation.ReportSpace":     (OK,       OK,       OK,       OK,       NOT_IN,   NOT_IN,   USER_TOKEN),
    "moderation.ReportParticipant": (OK,     OK,       OK,       OK,       NOT_IN,   NOT_IN,   USER_TOKEN),
    "moderation.ListReports":     (NOT_TS,   NOT_TS,   NOT_TS,   NOT_TS,   NOT_TS,   OK,       USER_TOKEN),
    "moderation.ResolveReport":   (NOT_TS,   NOT_TS,   NOT_TS,   NOT_TS,   NOT_TS,   OK,       USER_TOKEN),
    "moderation.GetModerationLog": (OK,      OK,   NOT_MANAGER, NOT_MANAGER, NOT_MANAGER, OK,   USER_TOKEN),
    "presence.ReportPresence":    (GATEWAY_TOKEN, GATEWAY_TOKEN, GATEWAY_TOKEN, GATEWAY_TOKEN,
                                   GATEWAY_TOKEN, GATEWAY_TOKEN, OK),
    "presence.GatewayDisconnected": (GATEWAY_TOKEN, GATEWAY_TOKEN, GATEWAY_TOKEN, GATEWAY_TOKEN,
                                     GATEWAY_TOKEN, GATEWAY_TOKEN, OK),
    "presence.GetSpacePresence":  (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "presence.GetUserPresence":   (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "presence.WatchSpace":        (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "media-relay.Publish":        (OK,       OK,       OK,       NOT_VOICE, NOT_VOICE, NOT_VOICE, USER_TOKEN),
    "media-relay.Subscribe":      (OK,       OK,       OK,       OK,       NOT_IN,   NOT_IN,   OK),
    "replay.ListReplays":         (OK,       OK,       OK,       OK,       OK,       OK,       USER_TOKEN),
    "replay.GetReplay":           (OK,       OK,       OK,       OK,       HIDDEN,   OK,       USER_TOKEN),
    "replay.StreamReplay":        (OK,       OK,       OK,       OK,       HIDDEN,   OK,       USER_TOKEN),
    "replay.DownloadReplay":      (OK,       OK,       OK,       OK,       HIDDEN,   OK,       USER_TOKEN),
    "replay.DeleteReplay":        (OK,       NOT_HOST, NOT_HOST, NOT_HOST, HIDDEN,   NOT_HOST, USER_TOKEN),
    "replay.GetSpaceStateAt":     (OK,       OK,       OK,       OK,       HIDDEN,   OK,       USER_TOKEN),
    # Everyone may have webhooks (a gateway's hear of every Space, a user's of the Spaces they host),
    # and each reaches only their own: these aim at the host's.
    "webhooks.RegisterWebhook":   (OK,       OK,       OK,       OK,       OK,       OK,       OK),
    "webhooks.ListWebhooks":      (OK,       OK,       OK,       OK,       OK,       OK,       OK),
    "webhooks.DeleteWebhook":     (OK,  NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS),
    "webhooks.ListWebhookDeliveries": (OK, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS),
    "webhooks.RetryWebhookDeliveries": (OK, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS, NOT_YOURS),
}
# fmt: on

#: Calls that change the Space for those who come after: each allowed cell has a Space of its own.
CHANGES_THE_SPACE = frozenset({
    "room.EndSpace", "room.LeaveSpace", "room.StepDown", "room.AddCoHost", "room.RemoveCoHost",
    "room.InviteToSpeak", "room.RevokeSpeaker", "room.ApproveSpeakRequest", "room.DenySpeakRequest",
    "moderation.MuteParticipant", "moderation.UnmuteParticipant", "moderation.RemoveParticipant",
    "presence.GatewayDisconnected", "replay.DeleteReplay",
})  # fmt: skip


# The Spaces


@dataclass
class Services:
    room: grpc.aio.Channel
    moderation: grpc.aio.Channel
    presence: grpc.aio.Channel
    relay: grpc.aio.Channel
    replay: grpc.aio.Channel
    webhooks: grpc.aio.Channel
    # The room's setup calls are the bulk of the run: a few Spaces at a time, the slowest first.
    building: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(12))

    def channel(self, service: str) -> grpc.aio.Channel:
        return self.relay if service == "media-relay" else getattr(self, service)


@dataclass
class Space:
    """A Space for some cells: people named after its tag, in the roles of their names."""

    tag: str
    space_id: str = ""
    version: int = 0  # the room's last version after the setup
    report_id: str = ""  # the host's report of the Space
    ended_at: Timestamp | None = None
    webhook_id: str = ""  # the host's webhook
    publishing: list[Publisher] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    def user(self, who: str) -> str:
        return f"{self.tag}-{who}"

    def metadata(self, caller: str):
        if caller == GATEWAY:
            return gateway_bearer(self.user(GATEWAY))
        return bearer(self.user(caller), (SAFETY,) if caller == SAFETY else ())

    async def close(self) -> None:
        for publisher in self.publishing:
            publisher.stop.set()
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)


async def no_space(services: Services, space: Space) -> Space:
    return space


async def live(
    services: Services, space: Space, policy: int = rt.JOIN_POLICY_ANYONE, recording: bool = False
) -> Space:
    """Live, with a co-host, two speakers and three listeners, one of whom asked to speak."""
    async with services.building:
        return await _live(services, space, policy, recording)


async def _live(services: Services, space: Space, policy: int, recording: bool) -> Space:
    host = RoomClient(services.room, space.user(HOST))
    created = await host.CreateSpace(title=space.tag, join_policy=policy, recording_enabled=recording)
    space.space_id = created.space.space_id
    if policy == rt.JOIN_POLICY_INVITED_ONLY:
        await host.InviteUsers(space_id=space.space_id, user_ids=[space.user(m) for m in MEMBERS])
    await host.StartSpace(space_id=space.space_id)
    for member in MEMBERS:
        await RoomClient(services.room, space.user(member)).JoinSpace(space_id=space.space_id)
    await host.AddCoHost(space_id=space.space_id, user_id=space.user(CO_HOST))
    await host.InviteToSpeak(space_id=space.space_id, user_id=space.user(SPEAKER))
    await host.InviteToSpeak(space_id=space.space_id, user_id=space.user(SPEAKER_2))  # the last role
    await RoomClient(services.room, space.user(REQUESTER)).RequestToSpeak(space_id=space.space_id)
    space.version = (await host.GetSpace(space_id=space.space_id)).space.version
    return space


async def moderated(services: Services, space: Space) -> Space:
    """Live, and moderation's view has reached its last version (the host's report waited for it)."""
    await live(services, space)
    host = ModerationClient(services.moderation, space.user(HOST))
    reported = await host.ReportSpace(
        space_id=space.space_id, reason=mt.REPORT_REASON_SPAM, room_version=space.version
    )
    space.report_id = reported.report_id
    return space


async def muted(services: Services, space: Space) -> Space:
    """Moderated, with the second speaker muted by the host."""
    await moderated(services, space)
    await ModerationClient(services.moderation, space.user(HOST)).MuteParticipant(
        space_id=space.space_id, user_id=space.user(SPEAKER_2), room_version=space.version
    )
    return space


async def present(services: Services, space: Space) -> Space:
    """Live, and presence knows it: the Space's gateway's report of the listener was accepted."""
    await live(services, space)
    gateway = PresenceGateway(services.presence, space.user(LISTENER))
    entries = [pt.PresenceEntry(user_id=space.user(LISTENER), space_id=space.space_id)]
    async with asyncio.timeout(15):
        while (await gateway.ReportPresence(gateway_id=space.user(GATEWAY), entries=entries)).rejected:
            await asyncio.sleep(0.1)
    return space


async def audible(services: Services, space: Space) -> Space:
    """Live, and the second speaker (promoted last) is being heard: the relay has the roles."""
    await live(services, space)
    publisher = Publisher(services.relay, space.space_id, space.user(SPEAKER_2), tone_packets(440, 1.0) * 30)
    space.publishing.append(publisher)
    space.tasks.append(await publish_when_admitted(publisher))
    return space


async def recorded(services: Services, space: Space) -> Space:
    """An invite-only recorded Space the roles held, ended after the host spoke, its replay READY."""
    await live(services, space, rt.JOIN_POLICY_INVITED_ONLY, recording=True)
    # Over one recording chunk (50 frames), so the relay writes audio before the Space ends.
    speaking = Publisher(services.relay, space.space_id, space.user(HOST), tone_packets(440, 1.2))
    await (await publish_when_admitted(speaking))
    await RoomClient(services.room, space.user(HOST)).EndSpace(space_id=space.space_id)
    stub = replay_service_pb2_grpc.ReplayServiceStub(services.replay)
    async with asyncio.timeout(45):
        while True:
            try:
                replay = (
                    await stub.GetReplay(
                        rppb.GetReplayRequest(space_id=space.space_id),
                        metadata=space.metadata(HOST),
                        timeout=15,
                    )
                ).replay
                if replay.state == rpt.REPLAY_STATE_READY:
                    break
            except grpc.aio.AioRpcError as e:
                if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    raise
            await asyncio.sleep(0.1)
    space.ended_at = replay.ended_at
    return space


async def hooked(services: Services, space: Space) -> Space:
    """No Space: the host has a webhook (for a Space that never happens, so it never sends)."""
    registered = await webhook_service_pb2_grpc.WebhookServiceStub(services.webhooks).RegisterWebhook(
        whpb.RegisterWebhookRequest(
            url="https://hooks.example.com/podium", space_ids=[space.user("nowhere")]
        ),
        metadata=space.metadata(HOST),
        timeout=15,
    )
    space.webhook_id = registered.webhook.webhook_id
    return space


SLOWEST_FIRST = [recorded, audible, present, muted, moderated, live, hooked, no_space]

# The requests: (scenario, request for the Space and caller). Each is well-formed.

Scenario = Callable[[Services, Space], object]
Request = Callable[[Space, str], object]


def _publish(s: Space, caller: str) -> mpb.PublishRequest:
    # A gateway publishes a speaker with that speaker's token; with its own, it speaks for the host.
    speaker = s.user(HOST if caller == GATEWAY else caller)
    return frame(s.space_id, speaker, 0, tone_packets(440, 0.02)[0], level=-127)


REQUESTS: dict[str, tuple[Scenario, Request]] = {
    "room.CreateSpace": (no_space, lambda s, c: rpb.CreateSpaceRequest(title=f"{s.tag} new")),
    "room.UpdateSpace": (live, lambda s, c: rpb.UpdateSpaceRequest(
        space_id=s.space_id, update_mask=FieldMask(paths=["title"]), title="renamed")),
    "room.GetSpace": (live, lambda s, c: rpb.GetSpaceRequest(space_id=s.space_id)),
    "room.ListSpaces": (no_space, lambda s, c: rpb.ListSpacesRequest(page_size=10)),
    "room.SearchSpaces": (no_space, lambda s, c: rpb.SearchSpacesRequest(query="matrix", page_size=10)),
    "room.BatchGetSpaces": (live, lambda s, c: rpb.BatchGetSpacesRequest(space_ids=[s.space_id])),
    "room.SubscribeToSpace": (live, lambda s, c: rpb.SubscribeToSpaceRequest(space_id=s.space_id)),
    "room.UnsubscribeFromSpace": (live, lambda s, c: rpb.UnsubscribeFromSpaceRequest(space_id=s.space_id)),
    "room.StartSpace": (live, lambda s, c: rpb.StartSpaceRequest(space_id=s.space_id)),
    "room.EndSpace": (live, lambda s, c: rpb.EndSpaceRequest(space_id=s.space_id)),
    "room.CancelSpace": (live, lambda s, c: rpb.CancelSpaceRequest(space_id=s.space_id)),
    "room.JoinSpace": (live, lambda s, c: rpb.JoinSpaceRequest(space_id=s.space_id)),
    "room.LeaveSpace": (live, lambda s, c: rpb.LeaveSpaceRequest(space_id=s.space_id)),
    "room.ListParticipants": (live, lambda s, c: rpb.ListParticipantsRequest(space_id=s.space_id)),
    "room.GetParticipant": (live, lambda s, c: rpb.GetParticipantRequest(space_id=s.space_id, user_id=s.user(LISTENER))),
    "room.InviteUsers": (live, lambda s, c: rpb.InviteUsersRequest(
        space_id=s.space_id, user_ids=[s.user("invitee")])),
    "room.CreateInviteLink": (live, lambda s, c: rpb.CreateInviteLinkRequest(space_id=s.space_id)),
    "room.AddCoHost": (live, lambda s, c: rpb.AddCoHostRequest(space_id=s.space_id, user_id=s.user(LISTENER_2))),
    "room.RemoveCoHost": (live, lambda s, c: rpb.RemoveCoHostRequest(space_id=s.space_id, user_id=s.user(CO_HOST))),
    "room.InviteToSpeak": (live, lambda s, c: rpb.InviteToSpeakRequest(
        space_id=s.space_id, user_id=s.user(LISTENER_2))),
    "room.RevokeSpeaker": (live, lambda s, c: rpb.RevokeSpeakerRequest(
        space_id=s.space_id, user_id=s.user(SPEAKER_2))),
    "room.StepDown": (live, lambda s, c: rpb.StepDownRequest(space_id=s.space_id)),
    "room.RequestToSpeak": (live, lambda s, c: rpb.RequestToSpeakRequest(space_id=s.space_id)),
    "room.WithdrawSpeakRequest": (live, lambda s, c: rpb.WithdrawSpeakRequestRequest(space_id=s.space_id)),
    "room.ListSpeakRequests": (live, lambda s, c: rpb.ListSpeakRequestsRequest(space_id=s.space_id)),
    "room.ApproveSpeakRequest": (live, lambda s, c: rpb.ApproveSpeakRequestRequest(
        space_id=s.space_id, user_id=s.user(REQUESTER))),
    "room.DenySpeakRequest": (live, lambda s, c: rpb.DenySpeakRequestRequest(
        space_id=s.space_id, user_id=s.user(REQUESTER))),
    "room.GetMediaEndpoint": (live, lambda s, c: rpb.GetMediaEndpointRequest(space_id=s.space_id)),
    "moderation.MuteParticipant": (moderated, lambda s, c: mdpb.MuteParticipantRequest(
        space_id=s.space_id, user_id=s.user(SPEAKER_2), room_version=s.version)),
    "moderation.UnmuteParticipant": (muted, lambda s, c: mdpb.UnmuteParticipantRequest(
        space_id=s.space_id, user_id=s.user(SPEAKER_2), room_version=s.version)),
    "moderation.RemoveParticipant": (moderated, lambda s, c: mdpb.RemoveParticipantRequest(
        space_id=s.space_id, user_id=s.user(LISTENER_2), reason="matrix", room_version=s.version)),
    "moderation.BlockUser": (no_space, lambda s, c: mdpb.BlockUserRequest(user_id=s.user("pest"))),
    "moderation.UnblockUser": (no_space, lambda s, c: mdpb.UnblockUserRequest(user_id=s.user("pest"))),
    "moderation.ListBlockedUsers": (no_space, lambda s, c: mdpb.ListBlockedUsersRequest()),
    "moderation.ReportSpace": (moderated, lambda s, c: mdpb.ReportSpaceRequest(
        space_id=s.space_id, reason=mt.REPORT_REASON_SPAM, room_version=s.version)),
    "moderation.ReportParticipant": (moderated, lambda s, c: mdpb.ReportParticipantRequest(
        space_id=s.space_id, user_id=s.user(LISTENER_2), reason=mt.REPORT_REASON_SPAM, room_version=s.version)),
    "moderation.ListReports": (moderated, lambda s, c: mdpb.ListReportsRequest(space_id=s.space_id)),
    "moderation.ResolveReport": (moderated, lambda s, c: mdpb.ResolveReportRequest(
        space_id=s.space_id, report_id=s.report_id, resolution=mt.RESOLUTION_NO_ACTION)),
    "moderation.GetModerationLog": (moderated, lambda s, c: mdpb.GetModerationLogRequest(space_id=s.space_id)),
    "presence.ReportPresence": (present, lambda s, c: ppb.ReportPresenceRequest(
        gateway_id=s.user(GATEWAY), entries=[pt.PresenceEntry(user_id=s.user(LISTENER), space_id=s.space_id)])),
    "presence.GatewayDisconnected": (present, lambda s, c: ppb.GatewayDisconnectedRequest(
        gateway_id=s.user(GATEWAY))),
    "presence.GetSpacePresence": (present, lambda s, c: ppb.GetSpacePresenceRequest(space_id=s.space_id)),
    "presence.GetUserPresence": (present, lambda s, c: ppb.GetUserPresenceRequest(user_id=s.user(LISTENER))),
    "presence.WatchSpace": (present, lambda s, c: ppb.WatchSpaceRequest(space_id=s.space_id)),
    "media-relay.Publish": (audible, _publish),
    "media-relay.Subscribe": (audible, lambda s, c: mpb.SubscribeRequest(
        space_id=s.space_id, gateway_id=s.user(GATEWAY))),
    "replay.ListReplays": (no_space, lambda s, c: rppb.ListReplaysRequest(host_id=s.user(HOST))),
    "replay.GetReplay": (recorded, lambda s, c: rppb.GetReplayRequest(space_id=s.space_id)),
    "replay.StreamReplay": (recorded, lambda s, c: rppb.StreamReplayRequest(space_id=s.space_id, speed=0)),
    "replay.DownloadReplay": (recorded, lambda s, c: rppb.DownloadReplayRequest(space_id=s.space_id)),
    "replay.DeleteReplay": (recorded, lambda s, c: rppb.DeleteReplayRequest(space_id=s.space_id)),
    "replay.GetSpaceStateAt": (recorded, lambda s, c: rppb.GetSpaceStateAtRequest(
        space_id=s.space_id, at=s.ended_at)),
    "webhooks.RegisterWebhook": (no_space, lambda s, c: whpb.RegisterWebhookRequest(
        url="https://hooks.example.com/podium", space_ids=[s.user("nowhere")])),
    "webhooks.ListWebhooks": (no_space, lambda s, c: whpb.ListWebhooksRequest()),
    "webhooks.DeleteWebhook": (hooked, lambda s, c: whpb.DeleteWebhookRequest(webhook_id=s.webhook_id)),
    "webhooks.ListWebhookDeliveries": (hooked, lambda s, c: whpb.ListWebhookDeliveriesRequest(
        webhook_id=s.webhook_id)),
    "webhooks.RetryWebhookDeliveries": (hooked, lambda s, c: whpb.RetryWebhookDeliveriesRequest(
        webhook_id=s.webhook_id)),
}  # fmt: skip


def _rpcs():
    for name, (module, service) in SERVICES.items():
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            yield f"{name}.{method.name}", name, method


def _cells():
    for rpc, _, _ in _rpcs():
        for caller in CALLERS:
            yield pytest.param(rpc, caller, id=f"{rpc}-{caller}")


def test_the_matrix_has_a_row_and_a_request_for_every_rpc_of_every_service_and_nothing_else():
    rpcs = {rpc for rpc, _, _ in _rpcs()}
    assert set(MATRIX) == rpcs, set(MATRIX) ^ rpcs
    assert set(REQUESTS) == rpcs, set(REQUESTS) ^ rpcs
    assert set(CHANGES_THE_SPACE) <= rpcs
    assert all(len(row) == len(CALLERS) for row in MATRIX.values())
    assert len(list(_cells())) == len(rpcs) * len(CALLERS) >= 329  # 47 RPCs x 7 callers when written


# Calling


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode | None  # None: neither a message nor an error in time
    reason: str = ""
    details: str = ""


async def _call(channel: grpc.aio.Channel, method, request, metadata) -> Answer:
    """Sends `request` (the only message of a client stream); for a server stream, until its first
    message or its end. The status code and ErrorInfo reason of the answer."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize, raw = type(request).SerializeToString, lambda b: b
    try:
        if method.client_streaming:
            await channel.stream_unary(path, serialize, raw)(iter([request]), metadata=metadata, timeout=15)
        elif method.server_streaming:
            call = channel.unary_stream(path, serialize, raw)(request, metadata=metadata, timeout=20)
            try:
                async with asyncio.timeout(15):
                    async for _ in call:
                        break
            finally:
                call.cancel()
        else:
            await channel.unary_unary(path, serialize, raw)(request, metadata=metadata, timeout=15)
    except grpc.aio.AioRpcError as e:
        return Answer(e.code(), error_reason(e), e.details() or "")
    except TimeoutError:
        return Answer(None, "", "no message and no status within 15 s")
    return Answer(grpc.StatusCode.OK)


def _groups(rpc: str) -> list[tuple[str, ...]]:
    """The callers that share a Space: each allowed one alone where the call changes the Space."""
    row = dict(zip(CALLERS, MATRIX[rpc], strict=True))
    if rpc not in CHANGES_THE_SPACE:
        return [CALLERS]
    allowed = [(c,) for c in CALLERS if not row[c].denied]
    return [*allowed, tuple(c for c in CALLERS if row[c].denied)]


@pytest.fixture(scope="module")
async def answers(stack):
    """Every cell's answer, each RPC's (or cell's) Space built and called concurrently."""
    addresses, _, _ = stack
    run = uuid.uuid4().hex[:6]
    async with contextlib.AsyncExitStack() as channels:
        services = Services(
            *[
                await channels.enter_async_context(open_channel(addresses[name]))
                for name in ("room", "moderation", "presence", "media-relay", "replay", "webhooks")
            ]
        )
        answers: dict[tuple[str, str], Answer] = {}

        async def group(n: int, rpc: str, service: str, method, callers: tuple[str, ...]) -> None:
            scenario, request = REQUESTS[rpc]
            space = Space(tag=f"am{run}-{n}")
            await scenario(services, space)
            try:
                results = await asyncio.gather(
                    *(
                        _call(services.channel(service), method, request(space, c), space.metadata(c))
                        for c in callers
                    )
                )
            finally:
                await space.close()
            answers.update({(rpc, c): a for c, a in zip(callers, results, strict=True)})

        plan = [
            (rpc, service, method, callers)
            for rpc, service, method in _rpcs()
            if rpc in MATRIX and rpc in REQUESTS
            for callers in _groups(rpc)
        ]
        plan.sort(key=lambda p: SLOWEST_FIRST.index(REQUESTS[p[0]][0]))  # the replays wait longest
        await asyncio.gather(*(group(n, *p) for n, p in enumerate(plan)))
        yield answers


@pytest.mark.parametrize(("rpc", "caller"), list(_cells()))
def test_each_caller_gets_what_its_token_and_role_allow(answers, rpc, caller):
    assert rpc in MATRIX, f"{rpc} has no row in the matrix: say who may call it"
    expected = MATRIX[rpc][CALLERS.index(caller)]
    got = answers[(rpc, caller)]
    shown = f"expected {expected}, got {got.code and got.code.name} {got.reason}: {got.details}"
    assert got.code == expected.code, shown
    if expected.reason:
        assert got.reason == expected.reason, shown
