"""Small test clients: one user's calls to one service, with their token."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET
from podium.moderation.v1 import moderation_service_pb2, moderation_service_pb2_grpc
from podium.presence.v1 import presence_service_pb2, presence_service_pb2_grpc
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc
from tests.support.auth import gateway_token


class ServiceClient:
    stub_class: type
    messages: object

    def __init__(self, channel: grpc.aio.Channel, user_id: str, token: str | None = None, roles=()):
        self.user_id = user_id
        self.stub = self.stub_class(channel)
        self.token = token if token is not None else mint_token(DEV_JWT_SECRET, user_id, roles=roles)

    def _md(self):
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def _metadata_for(self, request):
        return self._md()

    def __getattr__(self, method: str):
        rpc = getattr(self.stub, method)
        request_type = getattr(self.messages, f"{method}Request")

        async def call(request=None, **fields):
            request = request if request is not None else request_type(**fields)
            return await rpc(request, metadata=self._metadata_for(request), timeout=15)

        return call


class RoomClient(ServiceClient):
    stub_class = room_service_pb2_grpc.RoomServiceStub
    messages = room_service_pb2


class ModerationClient(ServiceClient):
    stub_class = moderation_service_pb2_grpc.ModerationServiceStub
    messages = moderation_service_pb2


class PresenceClient(ServiceClient):
    stub_class = presence_service_pb2_grpc.PresenceServiceStub
    messages = presence_service_pb2


class PresenceGateway(PresenceClient):
    """A client gateway's presence calls: a gateway's own calls (those naming a `gateway_id`) go
    with a gateway token for that gateway; questions go with the user token of `user_id`."""

    def _metadata_for(self, request):
        gateway_id = getattr(request, "gateway_id", "")
        if not gateway_id:
            return self._md()
        return (("authorization", f"Bearer {gateway_token(gateway_id)}"),)


def error_reason(error: grpc.aio.AioRpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return [v.field for v in bad.field_violations]
    return []
