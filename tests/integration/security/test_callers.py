"""Who may call what, by kind of token, over real gRPC (docs/security.md, "Two kinds of callers").

The matrix: every RPC of every service x every kind of caller (a user, a trust-and-safety user,
a client gateway), each cell asserted. A call that is not the caller's kind is refused with
PERMISSION_DENIED and a reason that says which token it takes; a call that is gets past that
gate (an empty request then fails, if at all, for its own reasons). A new RPC fails the matrix
until it is given a policy here.

Then the cases the gateway credentials exist for, each end to end: a stranger or a removed user
listening to an INVITED_ONLY Space, a user reporting presence for others, a gateway speaking for
another gateway, and presence for Spaces that do not exist.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import symbol_database

from podium.media.v1 import media_service_pb2 as mpb
from podium.media.v1 import media_service_pb2_grpc
from podium.moderation.v1 import moderation_service_pb2
from podium.presence.v1 import presence_service_pb2 as ppb
from podium.presence.v1 import presence_types_pb2 as pt
from podium.replay.v1 import replay_service_pb2
from podium.room.v1 import room_service_pb2
from podium.room.v1 import room_types_pb2 as rt
from podium.webhooks.v1 import webhook_service_pb2
from tests.integration.clients import (
    ModerationClient,
    PresenceClient,
    PresenceGateway,
    RoomClient,
    error_reason,
)
from tests.integration.media_relay.gateway import Publisher, publish_when_admitted
from tests.support.auth import bearer, gateway_bearer, gateway_token
from tests.support.channels import open_channel
from tests.support.opus_tones import tone_packets

pytestmark = pytest.mark.integration

SERVICES = {
    "room": (room_service_pb2, "RoomService"),
    "moderation": (moderation_service_pb2, "ModerationService"),
    "presence": (ppb, "PresenceService"),
    "replay": (replay_service_pb2, "ReplayService"),
    "media-relay": (mpb, "MediaRelayService"),
    "webhooks": (webhook_service_pb2, "WebhookService"),
}
USER, SAFETY, GATEWAY = "user", "trust-and-safety", "gateway"
CALLERS = {
    USER: bearer("matrix-user"),
    SAFETY: bearer("matrix-safety", ("trust-and-safety",)),
    GATEWAY: gateway_bearer("matrix-gateway"),
}
USERS_ONLY = frozenset({USER, SAFETY})
GATEWAYS_ONLY = frozenset({GATEWAY})
EVERYONE = USERS_ONLY | GATEWAYS_ONLY
#: Calls open to more than users. Every other RPC takes a user's own token.
POLICY = {
    "room.GetMediaEndpoint": EVERYONE,  # a gateway looks up the relay it subscribes to
    "media-relay.Subscribe": EVERYONE,  # a gateway for its listeners; a user only while in the Space
    "presence.ReportPresence": GATEWAYS_ONLY,
    "presence.GatewayDisconnected": GATEWAYS_ONLY,
    # A webhook's owner is its caller: a user (the Spaces they host) or a gateway (every Space).
    **{
        f"webhooks.{m.name}": EVERYONE
        for m in webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].methods
    },
}
KIND_REASONS = {"USER_TOKEN_REQUIRED", "GATEWAY_TOKEN_REQUIRED"}


def _rpcs():
    for name, (module, service) in SERVICES.items():
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            yield f"{name}.{method.name}", name, method


def _cells():
    for rpc, service, method in _rpcs():
        for caller in CALLERS:
            yield pytest.param(service, method, caller, id=f"{rpc}-{caller}")


def test_every_policy_names_a_real_rpc():
    assert set(POLICY) <= {rpc for rpc, _, _ in _rpcs()}


def test_the_matrix_covers_every_rpc_of_every_service_for_every_kind_of_caller():
    cells = list(_cells())
    assert len(cells) == sum(1 for _ in _rpcs()) * len(CALLERS)
    assert len(cells) >= 140, len(cells)  # 47 RPCs x 3 kinds when this was written


async def _call(address: str, method, metadata) -> tuple[grpc.StatusCode, str]:
    """Sends `method` an empty request; the status code and ErrorInfo reason of the answer."""
    request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
    path = f"/{method.containing_service.full_name}/{method.name}"
    async with open_channel(address) as channel:
        serialize, raw = request_class.SerializeToString, lambda b: b
        try:
            if method.client_streaming:
                call = channel.stream_unary(path, serialize, raw)(iter([request_class()]), metadata=metadata)
                await asyncio.wait_for(call, 10)
            elif method.server_streaming:
                call = channel.unary_stream(path, serialize, raw)(request_class(), metadata=metadata)
                async with asyncio.timeout(10):
                    async for _ in call:
                        break
                call.cancel()
            else:
                await channel.unary_unary(path, serialize, raw)(
                    request_class(), metadata=metadata, timeout=10
                )
        except grpc.aio.AioRpcError as e:
            return e.code(), error_reason(e)
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize(("service", "method", "caller"), list(_cells()))
async def test_each_rpc_takes_only_its_kinds_of_token(stack, service, method, caller):
    addresses, _, _ = stack
    allowed = POLICY.get(f"{service}.{method.name}", USERS_ONLY)
    code, reason = await _call(addresses[service], method, CALLERS[caller])
    if caller in allowed:
        assert reason not in KIND_REASONS, (code, reason)
        assert code != grpc.StatusCode.UNAUTHENTICATED, (code, reason)
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, (code, reason)
        expected = "GATEWAY_TOKEN_REQUIRED" if allowed == GATEWAYS_ONLY else "USER_TOKEN_REQUIRED"
        assert reason == expected


# The cases, end to end


async def _invite_only_space(room, host: str, invited: list[str]) -> str:
    host_client = RoomClient(room, host)
    created = await host_client.CreateSpace(title="private", join_policy=rt.JOIN_POLICY_INVITED_ONLY)
    space_id = created.space.space_id
    await host_client.StartSpace(space_id=space_id)
    if invited:
        await host_client.InviteUsers(space_id=space_id, user_ids=invited)
    return space_id


class Listening:
    """One Subscribe call, counting frames until it ends."""

    def __init__(self, channel, space_id: str, metadata):
        stub = media_service_pb2_grpc.MediaRelayServiceStub(channel)
        self.call = stub.Subscribe(mpb.SubscribeRequest(space_id=space_id, gateway_id="g"), metadata=metadata)
        self.frames = 0
        self.error: grpc.aio.AioRpcError | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.frames += len(message.frames)
        except grpc.aio.AioRpcError as e:
            self.error = e

    async def until(self, predicate, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.call.cancel()


async def test_only_those_in_an_invite_only_space_hear_it_and_a_removed_user_stops_hearing(stack):
    addresses, _, _ = stack
    async with (
        open_channel(addresses["room"]) as room,
        open_channel(addresses["moderation"]) as moderation,
        open_channel(addresses["media-relay"]) as relay,
    ):
        space_id = await _invite_only_space(room, "cal-host", ["cal-guest"])
        stranger = RoomClient(room, "cal-stranger")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stranger.JoinSpace(space_id=space_id)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await RoomClient(room, "cal-guest").JoinSpace(space_id=space_id)

        publisher = Publisher(relay, space_id, "cal-host", tone_packets(440, 30))
        speaking = await publish_when_admitted(publisher)
        try:
            gateway = Listening(relay, space_id, gateway_bearer("cal-gateway"))
            guest = Listening(relay, space_id, bearer("cal-guest"))
            outsider = Listening(relay, space_id, bearer("cal-stranger"))
            await outsider.until(lambda s: s.task.done())
            assert outsider.error is not None and outsider.error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_reason(outsider.error) == "NOT_A_PARTICIPANT"
            assert outsider.frames == 0
            # The marker that the audio flows: the gateway and the guest hear it.
            await gateway.until(lambda s: s.frames >= 25)
            await guest.until(lambda s: s.frames >= 25)

            # Removed (and so barred from rejoining): the guest's own stream ends; the gateway's goes on.
            await ModerationClient(moderation, "cal-host").RemoveParticipant(
                space_id=space_id, user_id="cal-guest", reason="test"
            )
            await guest.until(lambda s: s.task.done())
            assert guest.error is not None and error_reason(guest.error) == "NOT_A_PARTICIPANT"
            heard = gateway.frames
            await gateway.until(lambda s: s.frames >= heard + 25)
            again = Listening(relay, space_id, bearer("cal-guest"))
            await again.until(lambda s: s.task.done())
            assert again.error is not None and error_reason(again.error) == "NOT_A_PARTICIPANT"
            assert again.frames == 0
            gateway.stop()
        finally:
            publisher.stop.set()
            speaking.cancel()


async def test_a_gateway_subscription_needs_a_live_space(stack):
    addresses, _, _ = stack
    async with open_channel(addresses["room"]) as room, open_channel(addresses["media-relay"]) as relay:
        host = RoomClient(room, "cal-scheduler")
        space_id = (await host.CreateSpace(title="not yet")).space.space_id
        early = Listening(relay, space_id, gateway_bearer("cal-gateway"))
        await early.until(lambda s: s.task.done())
        # Not live (or, until the relay's view has it, unknown): refused either way, with a reason.
        assert early.error is not None
        assert error_reason(early.error) in {"SPACE_NOT_LIVE", "SPACE_NOT_FOUND"}
        unknown = Listening(relay, "no-such-space", gateway_bearer("cal-gateway"))
        await unknown.until(lambda s: s.task.done())
        assert unknown.error is not None and unknown.error.code() == grpc.StatusCode.NOT_FOUND


async def test_presence_is_reported_only_by_a_gateway_for_itself(stack):
    addresses, _, _ = stack
    async with open_channel(addresses["room"]) as room, open_channel(addresses["presence"]) as presence:
        host = RoomClient(room, "cal-present-host")
        space_id = (await host.CreateSpace(title="presence")).space.space_id
        await host.StartSpace(space_id=space_id)
        gateway = PresenceGateway(presence, "cal-present-host")
        entries = [pt.PresenceEntry(user_id="cal-present-host", space_id=space_id)]
        await _until_accepted(gateway, "gw-real", entries)

        as_user = PresenceClient(presence, "cal-present-host")
        impostor = PresenceClient(presence, "gw-other", token=gateway_token("gw-other"))
        attempts = {
            "a user reporting": (as_user.ReportPresence(gateway_id="gw-real", entries=entries), "GATEWAY_TOKEN_REQUIRED"),
            "a user disconnecting a gateway": (as_user.GatewayDisconnected(gateway_id="gw-real"), "GATEWAY_TOKEN_REQUIRED"),
            "another gateway reporting": (impostor.ReportPresence(gateway_id="gw-real", entries=entries), "NOT_YOUR_GATEWAY"),
            "another gateway disconnecting": (impostor.GatewayDisconnected(gateway_id="gw-real"), "NOT_YOUR_GATEWAY"),
        }  # fmt: skip
        for what, (call, reason) in attempts.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, what
            assert error_reason(refused.value) == reason, what

        # The marker: the real gateway's next report is answered after those, and the host is
        # still present (a disconnect of gw-real would have taken them out at once).
        await gateway.ReportPresence(gateway_id="gw-real", entries=entries)
        present = await host_presence(presence, space_id)
        assert present == {"cal-present-host"}


async def _until_accepted(gateway, gateway_id, entries, timeout=15.0):
    async with asyncio.timeout(timeout):
        while (await gateway.ReportPresence(gateway_id=gateway_id, entries=entries)).rejected:
            await asyncio.sleep(0.1)
        while True:
            reply = await gateway.GetSpacePresence(space_id=entries[0].space_id)
            if reply.present_count:
                return
            await asyncio.sleep(0.1)


async def host_presence(presence, space_id: str) -> set[str]:
    reply = await PresenceClient(presence, "cal-asker").GetSpacePresence(space_id=space_id, page_size=100)
    return {u.user_id for u in reply.users}


async def test_presence_refuses_entries_and_questions_about_spaces_that_do_not_exist(stack):
    addresses, _, _ = stack
    async with open_channel(addresses["room"]) as room, open_channel(addresses["presence"]) as presence:
        host = RoomClient(room, "cal-ender")
        live = (await host.CreateSpace(title="live")).space.space_id
        await host.StartSpace(space_id=live)
        ended = (await host.CreateSpace(title="ended")).space.space_id
        await host.StartSpace(space_id=ended)
        await host.EndSpace(space_id=ended)
        gateway = PresenceGateway(presence, "cal-asker")
        entries = [
            pt.PresenceEntry(user_id="cal-ender", space_id=live),
            pt.PresenceEntry(user_id="cal-a", space_id="no-such-space"),
            pt.PresenceEntry(user_id="cal-b", space_id=ended),
        ]
        async with asyncio.timeout(15):  # until presence's view has seen the end
            while True:
                reply = await gateway.ReportPresence(gateway_id="gw-mixed", entries=entries)
                rejected = {(r.index, r.space_id, r.reason) for r in reply.rejected}
                if (2, ended, "SPACE_ENDED") in rejected:
                    break
                await asyncio.sleep(0.1)
        assert rejected == {(1, "no-such-space", "SPACE_NOT_FOUND"), (2, ended, "SPACE_ENDED")}
        assert reply.accepted == 1

        asker = PresenceClient(presence, "cal-asker")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await asker.GetSpacePresence(space_id="no-such-space")
        assert (unknown.value.code(), error_reason(unknown.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "SPACE_NOT_FOUND",
        )
        stream = asker.stub.WatchSpace(ppb.WatchSpaceRequest(space_id="no-such-space"), metadata=asker._md())
        with pytest.raises(grpc.aio.AioRpcError) as unwatched:
            async for _ in stream:
                pass
        assert (unwatched.value.code(), error_reason(unwatched.value)) == (
            grpc.StatusCode.NOT_FOUND,
            "SPACE_NOT_FOUND",
        )
        # The live Space's entry was recorded.
        async with asyncio.timeout(15):
            while "cal-ender" not in await host_presence(presence, live):
                await asyncio.sleep(0.1)


async def test_list_reports_refuses_filters_that_are_not_values(stack):
    addresses, _, _ = stack
    async with open_channel(addresses["moderation"]) as moderation:
        safety = ModerationClient(moderation, "cal-safety", roles=("trust-and-safety",))
        for fields, field in (({"state": 99}, "state"), ({"reason": 99}, "reason")):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await safety.ListReports(**fields)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in bad.value.details()
        await safety.ListReports(state=0, reason=0)  # unspecified: every state and reason
