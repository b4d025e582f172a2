"""Every service refuses every kind of bad bearer token with UNAUTHENTICATED and says why."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest

from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET
from podium.media.v1 import media_service_pb2, media_service_pb2_grpc
from podium.moderation.v1 import moderation_service_pb2, moderation_service_pb2_grpc
from podium.presence.v1 import presence_service_pb2, presence_service_pb2_grpc
from podium.replay.v1 import replay_service_pb2, replay_service_pb2_grpc
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc
from podium.webhooks.v1 import webhook_service_pb2, webhook_service_pb2_grpc

pytestmark = pytest.mark.integration

NOW = time.time()
BAD_TOKENS = {
    "missing": (None, "missing bearer token"),
    "not a bearer": ("Basic dXNlcjpwYXNz", "must be 'Bearer <jwt>'"),
    "expired": (mint_token(DEV_JWT_SECRET, "eve", now=NOW - 7200), "expired"),
    "not yet valid": (mint_token(DEV_JWT_SECRET, "eve", extra={"nbf": int(NOW) + 3600}), "not valid yet"),
    "wrong audience": (mint_token(DEV_JWT_SECRET, "eve", audience="elsewhere"), "audience"),
    "wrong signature": (mint_token("another-key-long-enough-for-hs256-signing", "eve"), "signature"),
    "alg none": (jwt.encode({"sub": "eve", "aud": "podium", "exp": 2**40}, "", algorithm="none"), "HS256"),
    "garbage": ("not.a.jwt", "malformed"),
}

# One cheap call per service; streams fail on their first read.
CALLS = {
    "room": lambda ch, md: room_service_pb2_grpc.RoomServiceStub(ch).GetSpace(
        room_service_pb2.GetSpaceRequest(space_id="s"), metadata=md, timeout=10
    ),
    "moderation": lambda ch, md: moderation_service_pb2_grpc.ModerationServiceStub(ch).ListBlockedUsers(
        moderation_service_pb2.ListBlockedUsersRequest(), metadata=md, timeout=10
    ),
    "presence": lambda ch, md: presence_service_pb2_grpc.PresenceServiceStub(ch).GetUserPresence(
        presence_service_pb2.GetUserPresenceRequest(user_id="u"), metadata=md, timeout=10
    ),
    "replay": lambda ch, md: replay_service_pb2_grpc.ReplayServiceStub(ch).ListReplays(
        replay_service_pb2.ListReplaysRequest(host_id="h"), metadata=md, timeout=10
    ),
    "webhooks": lambda ch, md: webhook_service_pb2_grpc.WebhookServiceStub(ch).ListWebhooks(
        webhook_service_pb2.ListWebhooksRequest(), metadata=md, timeout=10
    ),
    "media-relay": lambda ch, md: _first(
        media_service_pb2_grpc.MediaRelayServiceStub(ch).Subscribe(
            media_service_pb2.SubscribeRequest(space_id="s", gateway_id="g"), metadata=md, timeout=10
        )
    ),
}


async def _first(stream):
    async for item in stream:
        return item


async def test_every_service_refuses_bad_tokens_with_a_reason(stack, channel):
    addresses, _, _ = stack
    for name, call in CALLS.items():
        service = await channel(addresses[name])
        for kind, (token, reason) in BAD_TOKENS.items():
            if token is None:
                metadata = ()
            elif token.startswith("Basic "):
                metadata = (("authorization", token),)
            else:
                metadata = (("authorization", f"Bearer {token}"),)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(service, metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, kind)
            assert reason in refused.value.details(), (name, kind, refused.value.details())
