"""Property-based fuzzing of every request of every service, over real gRPC.

For every method of every Podium service, hypothesis builds requests from the
message descriptor (tests/support/fuzzing.py: random and boundary values,
oversize strings, unknown enums, out-of-range times) and sends them with the
token of a host, a listener, a stranger, trust and safety or a client gateway. The rules:

- never UNKNOWN or INTERNAL, and every error says something;
- never a crash: the service is still SERVING afterwards;
- never a state change on a rejection: the service's event count is unchanged.

`PODIUM_FUZZ_EXAMPLES` (default 8) sets the examples per method.
"""

from __future__ import annotations

import os

import grpc
import pytest
from google.protobuf import symbol_database
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.settings import DEV_JWT_SECRET
from podium.media.v1 import media_service_pb2
from podium.moderation.v1 import moderation_service_pb2
from podium.presence.v1 import presence_service_pb2
from podium.replay.v1 import replay_service_pb2
from podium.room.v1 import room_service_pb2
from podium.webhooks.v1 import webhook_service_pb2
from tests.integration.security.conftest import USERS
from tests.support.fuzzing import build, message_values

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("PODIUM_FUZZ_EXAMPLES", "8"))
SERVICES = {
    "room": (room_service_pb2, "RoomService", "room.events"),
    "moderation": (moderation_service_pb2, "ModerationService", "moderation.events"),
    "presence": (presence_service_pb2, "PresenceService", None),  # no event store: its state is the log
    "replay": (replay_service_pb2, "ReplayService", "replay.events"),
    "media-relay": (media_service_pb2, "MediaRelayService", "media_relay.events"),
    # no events: its state is the webhooks registered and not deleted
    "webhooks": (webhook_service_pb2, "WebhookService", "webhooks.webhooks WHERE deleted_at IS NULL"),
}
ROLES = {"fuzz-safety": ("trust-and-safety",), "fuzz-gateway": (GATEWAY_ROLE,)}
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def _methods():
    for name, (module, service, _) in SERVICES.items():
        for method in module.DESCRIPTOR.services_by_name[service].methods:
            yield pytest.param(name, method, id=f"{name}.{method.name}")


@pytest.mark.parametrize(("service", "method"), list(_methods()))
def test_no_request_is_an_internal_error_a_crash_or_a_half_change(stack, service, method):
    addresses, counter, known = stack
    _, _, table = SERVICES[service]
    request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
    path = f"/{method.containing_service.full_name}/{method.name}"
    channel = grpc.insecure_channel(addresses[service])
    serialize, deserialize = request_class.SerializeToString, lambda raw: raw
    if method.client_streaming:
        call = channel.stream_unary(path, serialize, deserialize)
    elif method.server_streaming:
        call = channel.unary_stream(path, serialize, deserialize)
    else:
        call = channel.unary_unary(path, serialize, deserialize)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(values=message_values(method.input_type, known), user=st.sampled_from(USERS))
    def one_request(values, user):
        request = build(request_class, values)
        roles = ROLES.get(user, ())
        metadata = (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user, roles=roles)}"),)
        before = counter.count(table) if table else 0
        try:
            if method.client_streaming:
                call(iter([request, request]), metadata=metadata, timeout=5)
            elif method.server_streaming:
                responses = call(request, metadata=metadata, timeout=1)
                for _ in responses:  # the first message, or the error
                    responses.cancel()
                    break
            else:
                call(request, metadata=metadata, timeout=5)
        except grpc.RpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                return  # we hung up on a stream that was (rightly) waiting for more
            assert code not in FORBIDDEN, (path, request, code, error.details())
            assert error.details(), (path, code)
            if table:
                assert counter.count(table) == before, (path, "a rejected request changed state", code)

    try:
        one_request()
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING  # no crash
    finally:
        channel.close()
