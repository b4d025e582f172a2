"""gRPC transport security in one process: `GrpcHost` serving TLS and mTLS, `libs.grpckit.channels`
dialling it, and settings that cannot be used stopping the start with a message naming them.

The same with real service processes end to end: tests/integration/security/test_tls.py.
"""

from __future__ import annotations

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config.settings import PodiumSettings
from libs.grpckit.channels import ClientTls, dial
from libs.grpckit.server import GrpcHost
from libs.grpckit.tls import TlsConfigError, server_credentials


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; a server certificate for 127.0.0.1 and a client certificate, both signed by it; and a
    client certificate from another CA (and that CA)."""
    where = tmp_path_factory.mktemp("grpc-pki")
    ca, stranger = trustme.CA(), trustme.CA()
    files = {"ca.pem": ca.cert_pem, "stranger-ca.pem": stranger.cert_pem}
    for name, issuer, identity in (
        ("server", ca, "127.0.0.1"),
        ("client", ca, "podium-room"),
        ("stranger", stranger, "podium-room"),
    ):
        leaf = issuer.issue_cert(identity)
        files[f"{name}.pem"] = leaf.cert_chain_pems[0]
        files[f"{name}.key"] = leaf.private_key_pem
    for name, blob in files.items():
        blob.write_to_path(str(where / name))
    return {name: str(where / name) for name in files}


async def _check(channel: grpc.aio.Channel) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def _refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _check(channel)
    await channel.close()
    return refused.value.code()


async def _serving(settings: PodiumSettings) -> GrpcHost:
    host = GrpcHost(settings, ["podium.test.v1.TestService"])
    await host.start("127.0.0.1:0")
    await host.serving()
    return host


def test_no_certificate_means_plaintext():
    assert server_credentials(PodiumSettings()) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"grpc_tls_cert_file": "x.pem"},
            "PODIUM_GRPC_TLS_CERT_FILE is set but PODIUM_GRPC_TLS_KEY_FILE is not",
        ),
        (
            {"grpc_tls_key_file": "x.key"},
            "PODIUM_GRPC_TLS_KEY_FILE is set but PODIUM_GRPC_TLS_CERT_FILE is not",
        ),
        (
            {"grpc_tls_client_ca_file": "ca.pem"},
            "PODIUM_GRPC_TLS_CLIENT_CA_FILE is set but the server has no",
        ),
    ],
)
def test_half_a_configuration_is_refused(fields, message):
    with pytest.raises(TlsConfigError, match=message):
        server_credentials(PodiumSettings(**fields))


async def test_a_missing_key_file_stops_the_start_naming_the_setting(pki, tmp_path):
    settings = PodiumSettings(
        grpc_tls_cert_file=pki["server.pem"], grpc_tls_key_file=str(tmp_path / "gone.key")
    )
    host = GrpcHost(settings, [])
    with pytest.raises(TlsConfigError, match=r"PODIUM_GRPC_TLS_KEY_FILE: cannot read .*gone\.key"):
        await host.start("127.0.0.1:0")
    assert host.port == 0  # nothing was bound


def test_a_client_ca_that_is_not_pem_names_the_setting(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    settings = PodiumSettings(
        grpc_tls_cert_file=pki["server.pem"],
        grpc_tls_key_file=pki["server.key"],
        grpc_tls_client_ca_file=str(junk),
    )
    with pytest.raises(TlsConfigError, match=r"PODIUM_GRPC_TLS_CLIENT_CA_FILE: .* is not a PEM file"):
        server_credentials(settings)


def test_the_client_side_reads_the_environment_of_a_process():
    tls = ClientTls.from_env({"PODIUM_GRPC_TLS_CA_FILE": "/ca.pem", "PODIUM_GRPC_TLS_CERT_FILE": "/c.pem"})
    assert tls == ClientTls(ca_file="/ca.pem", cert_file="/c.pem", key_file="")
    assert tls.enabled
    assert not ClientTls.from_env({}).enabled


async def test_a_tls_server_refuses_plaintext_and_answers_a_client_trusting_its_ca(pki):
    host = await _serving(
        PodiumSettings(grpc_tls_cert_file=pki["server.pem"], grpc_tls_key_file=pki["server.key"])
    )
    address = f"127.0.0.1:{host.port}"
    try:
        assert await _refused(dial(address)) == grpc.StatusCode.UNAVAILABLE
        async with dial(address, ClientTls(ca_file=pki["ca.pem"])) as channel:
            assert await _check(channel) == "SERVING"
        # a client that trusts some other CA does not accept the server
        assert (
            await _refused(dial(address, ClientTls(ca_file=pki["stranger-ca.pem"])))
            == grpc.StatusCode.UNAVAILABLE
        )
    finally:
        await host.stop()


async def test_an_mtls_server_wants_a_client_certificate_signed_by_its_client_ca(pki):
    host = await _serving(
        PodiumSettings(
            grpc_tls_cert_file=pki["server.pem"],
            grpc_tls_key_file=pki["server.key"],
            grpc_tls_client_ca_file=pki["ca.pem"],
        )
    )
    address = f"127.0.0.1:{host.port}"
    try:
        assert await _refused(dial(address, ClientTls(ca_file=pki["ca.pem"]))) == grpc.StatusCode.UNAVAILABLE
        foreign = ClientTls(
            ca_file=pki["ca.pem"], cert_file=pki["stranger.pem"], key_file=pki["stranger.key"]
        )
        assert await _refused(dial(address, foreign)) == grpc.StatusCode.UNAVAILABLE
        own = ClientTls(ca_file=pki["ca.pem"], cert_file=pki["client.pem"], key_file=pki["client.key"])
        async with dial(address, own) as channel:
            assert await _check(channel) == "SERVING"
    finally:
        await host.stop()
