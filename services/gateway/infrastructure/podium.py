"""The Podium services the gateway calls, through their public gRPC APIs only.

A user's calls carry that user's own token (the browser holds it); the
gateway's own calls (Subscribe, ReportPresence, GatewayDisconnected,
GetMediaEndpoint) carry the gateway's token (docs/security.md).
"""

from __future__ import annotations

import grpc

from libs.grpckit.channels import ClientTls, dial
from podium.media.v1 import media_service_pb2_grpc
from podium.moderation.v1 import moderation_service_pb2, moderation_service_pb2_grpc
from podium.presence.v1 import presence_service_pb2, presence_service_pb2_grpc
from podium.replay.v1 import replay_service_pb2, replay_service_pb2_grpc
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class PodiumClients:
    """One channel per service, and one per media relay the room names for a Space."""

    def __init__(self, addresses: dict[str, str], tls: ClientTls, gateway_token: str):
        self.tls = tls
        self.gateway_token = gateway_token
        self.channels = {name: dial(address, tls) for name, address in addresses.items()}
        self.room = room_service_pb2_grpc.RoomServiceStub(self.channels["room"])
        self.presence = presence_service_pb2_grpc.PresenceServiceStub(self.channels["presence"])
        self.moderation = moderation_service_pb2_grpc.ModerationServiceStub(self.channels["moderation"])
        self.replay = replay_service_pb2_grpc.ReplayServiceStub(self.channels["replay"])
        self.messages = {
            "room": room_service_pb2,
            "presence": presence_service_pb2,
            "moderation": moderation_service_pb2,
            "replay": replay_service_pb2,
        }
        self._relays: dict[str, grpc.aio.Channel] = {}

    def stub(self, service: str):
        return getattr(self, service)

    @property
    def as_gateway(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.gateway_token)

    async def relay_for(self, space_id: str) -> media_service_pb2_grpc.MediaRelayServiceStub:
        """The media relay that serves `space_id`, as the room names it (GetMediaEndpoint)."""
        reply = await self.room.GetMediaEndpoint(
            room_service_pb2.GetMediaEndpointRequest(space_id=space_id), metadata=self.as_gateway, timeout=5
        )
        channel = self._relays.get(reply.address)
        if channel is None:
            channel = self._relays[reply.address] = dial(reply.address, self.tls)
        return media_service_pb2_grpc.MediaRelayServiceStub(channel)

    async def close(self) -> None:
        for channel in (*self.channels.values(), *self._relays.values()):
            await channel.close()
