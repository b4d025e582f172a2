"""gRPC over TLS with real service processes: a CA and certificates made here (trustme), a stack
of room, moderation and media-relay serving TLS, moderation also requiring client certificates
(mTLS). Their health is probed over TLS too (libs/devstack/supervisor.py dials as the service's
own peers would, presenting the service's certificate where mTLS asks for one).

Kafka stays plaintext here: the dev broker (Tansu) has no TLS listener, so Kafka's SSL and SASL
options are tested at the options level (tests/unit/libs/test_kafka_security.py).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.grpckit.channels import ClientTls, dial
from podium.media.v1 import media_service_pb2_grpc
from podium.moderation.v1 import moderation_types_pb2 as mt
from tests.integration.clients import ModerationClient, RoomClient, error_reason
from tests.integration.conftest import eventually
from tests.integration.media_relay.gateway import (
    Publisher,
    Subscriber,
    frame,
    publish_when_admitted,
    subscribe_when_known,
)
from tests.support.audio import decode_frames, dominant_frequency, tone_frames
from tests.support.auth import bearer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    """Files: the CA; the services' certificate (127.0.0.1, server and client use) and key; a
    client's certificate and key from the same CA; and one from a CA nobody trusts."""
    where = tmp_path_factory.mktemp("tls")
    ca, stranger = trustme.CA(), trustme.CA()
    blobs = {"ca.pem": ca.cert_pem}
    for name, issuer, identities in (
        ("service", ca, ("127.0.0.1", "localhost")),
        ("client", ca, ("tls-test-client",)),
        ("stranger", stranger, ("tls-test-client",)),
    ):
        leaf = issuer.issue_cert(*identities)
        blobs[f"{name}.pem"] = leaf.cert_chain_pems[0]
        blobs[f"{name}.key"] = leaf.private_key_pem
    for name, blob in blobs.items():
        blob.write_to_path(str(where / name))
    return {name: str(where / name) for name in blobs}


@pytest.fixture(scope="module")
async def stack(service_factory, pki):
    """room and media-relay over TLS; moderation over mTLS (client certificates from the CA)."""
    tls = {
        "PODIUM_GRPC_TLS_CERT_FILE": pki["service.pem"],
        "PODIUM_GRPC_TLS_KEY_FILE": pki["service.key"],
        "PODIUM_GRPC_TLS_CA_FILE": pki["ca.pem"],
    }
    services = await asyncio.gather(
        service_factory("room", env=tls),
        service_factory("moderation", env={**tls, "PODIUM_GRPC_TLS_CLIENT_CA_FILE": pki["ca.pem"]}),
        service_factory("media-relay", env=tls),
    )
    yield dict(zip(("room", "moderation", "media-relay"), services, strict=True))
    for service in services:
        await service.stop()


@pytest.fixture
async def channels():
    """`open_(address, tls)` -> a channel made by libs.grpckit.channels, closed after the test."""
    opened: list[grpc.aio.Channel] = []

    def open_(address: str, tls: ClientTls | None = None) -> grpc.aio.Channel:
        opened.append(dial(address, tls))
        return opened[-1]

    yield open_
    for channel in opened:
        await channel.close()


async def _health(channel: grpc.aio.Channel) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def _refused(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code()


async def test_plaintext_is_refused_and_a_client_trusting_the_ca_creates_joins_mutes_publishes_and_hears(
    stack, pki, channels
):
    for service in stack.values():
        assert await _refused(_health(channels(service.address))) == grpc.StatusCode.UNAVAILABLE, service
    assert (
        await _refused(RoomClient(channels(stack["room"].address), "tls-host").CreateSpace(title="plain"))
        == grpc.StatusCode.UNAVAILABLE
    )

    trusting = ClientTls(ca_file=pki["ca.pem"])
    with_certificate = ClientTls(
        ca_file=pki["ca.pem"], cert_file=pki["client.pem"], key_file=pki["client.key"]
    )
    room = channels(stack["room"].address, trusting)
    relay = channels(stack["media-relay"].address, trusting)
    moderation = channels(stack["moderation"].address, with_certificate)

    host = RoomClient(room, "tls-host")
    space_id = (await host.CreateSpace(title="over TLS")).space.space_id
    await host.StartSpace(space_id=space_id)
    for user in ("tls-spk", "tls-listener"):
        await RoomClient(room, user).JoinSpace(space_id=space_id)
    await host.InviteToSpeak(space_id=space_id, user_id="tls-spk")
    muted = await eventually(
        lambda: ModerationClient(moderation, "tls-host").MuteParticipant(space_id=space_id, user_id="tls-spk")
    )
    assert muted.kind == mt.MUTE_KIND_HOST

    # The gateway subscribes, the host speaks: real Opus frames, one second of a 440 Hz tone.
    gateway = Subscriber(relay, space_id, "gw-1")
    listening = await subscribe_when_known(gateway)
    tone = tone_frames(440, 1.0)
    reply = await (await publish_when_admitted(Publisher(relay, space_id, "tls-host", tone)))
    assert reply.frames_forwarded == len(tone) and reply.frames_refused == 0
    async with asyncio.timeout(5):
        while len(tone) - 1 not in {f.sequence for f in gateway.of("tls-host")}:  # the last frame
            await asyncio.sleep(0.05)
    heard = gateway.of("tls-host")  # after the probe frame publish_when_admitted may have sent
    assert [f.sequence for f in heard[-len(tone) :]] == list(range(len(tone)))
    assert abs(dominant_frequency(decode_frames([f.opus for f in heard[-25:]])) - 440) < 15
    listening.cancel()

    # The mute, made over mTLS, reached the relay: the muted speaker may not publish.
    stub = media_service_pb2_grpc.MediaRelayServiceStub(relay)

    async def muted_speaker_publishes():
        async def one_frame():
            yield frame(space_id, "tls-spk", 0, tone[0])

        return await stub.Publish(one_frame(), metadata=bearer("tls-spk"), timeout=10)

    async with asyncio.timeout(10):
        while True:  # the relay learns roles and mutes from the log, a few milliseconds behind
            try:
                await muted_speaker_publishes()
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.PERMISSION_DENIED and error_reason(e) == "MUTED":
                    break
            await asyncio.sleep(0.05)


async def test_mtls_refuses_a_client_without_a_certificate_from_the_ca_and_admits_one_with(
    stack, pki, channels
):
    address = stack["moderation"].address
    no_certificate = ClientTls(ca_file=pki["ca.pem"])
    foreign = ClientTls(ca_file=pki["ca.pem"], cert_file=pki["stranger.pem"], key_file=pki["stranger.key"])
    own = ClientTls(ca_file=pki["ca.pem"], cert_file=pki["client.pem"], key_file=pki["client.key"])

    for tls in (no_certificate, foreign):
        call = ModerationClient(channels(address, tls), "mtls-user").ListBlockedUsers()
        assert await _refused(call) == grpc.StatusCode.UNAVAILABLE
    blocked = await ModerationClient(channels(address, own), "mtls-user").ListBlockedUsers()
    assert list(blocked.user_ids) == []
    # The room requires no client certificate: a client that has none is served there.
    assert await _health(channels(stack["room"].address, no_certificate)) == "SERVING"
