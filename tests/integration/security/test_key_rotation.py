"""A service configured mid-rotation, through real gRPC: a current and a previous HS256 key, and a
JWKS of an external issuer's public keys. Tokens name their key with `kid`."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from libs.auth.keys import jwk_of
from libs.auth.tokens import mint_token
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc

pytestmark = pytest.mark.integration

CURRENT = "the-current-secret-long-enough-for-hs256-signing"
PREVIOUS = "the-previous-secret-long-enough-for-hs256-signing"
RETIRED = "a-retired-secret-long-enough-for-hs256-signing"
ISSUER_KEY = ed25519.Ed25519PrivateKey.generate()


async def _create_space(room, token: str):
    return await room_service_pb2_grpc.RoomServiceStub(room.channel).CreateSpace(
        room_service_pb2.CreateSpaceRequest(title="rotation"),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=10,
    )


async def test_a_service_mid_rotation_accepts_current_previous_and_jwks_keys_and_refuses_the_rest(
    service_factory, private_database_url, tmp_path
):
    jwks = tmp_path / "issuer-jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk_of(ISSUER_KEY.public_key(), "issuer-1")]}))
    room = await service_factory(
        "room",
        database=private_database_url,  # its own: killed when this test ends
        env={
            "PODIUM_JWT_SECRET": CURRENT,
            "PODIUM_JWT_KEY_ID": "2026-12",
            "PODIUM_JWT_PREVIOUS_SECRETS": f"2026-11={PREVIOUS}",
            "PODIUM_JWT_JWKS_FILE": str(jwks),
        },
    )

    accepted = {
        "current kid": mint_token(CURRENT, "alice", key_id="2026-12"),
        "no kid (current key)": mint_token(CURRENT, "alice"),
        "previous kid": mint_token(PREVIOUS, "bob", key_id="2026-11"),
        "EdDSA from the JWKS": mint_token(ISSUER_KEY, "carol", key_id="issuer-1"),
    }
    for kind, token in accepted.items():
        created = await _create_space(room, token)
        assert created.space.space_id, kind

    refused = {
        "rotated-out kid": (
            mint_token(RETIRED, "eve", key_id="2026-10"),
            "signed with key '2026-10', which is not accepted (rotated out?)",
        ),
        "expired token of a known kid": (
            mint_token(PREVIOUS, "bob", key_id="2026-11", now=time.time() - 7200),
            "expired",
        ),
        "HS256 token naming the JWKS key": (mint_token(CURRENT, "eve", key_id="issuer-1"), "EdDSA"),
        "previous key without its kid": (mint_token(PREVIOUS, "bob"), "signature"),
    }
    for kind, (token, reason) in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await _create_space(room, token)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, kind
        assert reason in error.value.details(), (kind, error.value.details())
