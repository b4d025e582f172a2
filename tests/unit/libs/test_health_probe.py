"""The exec health probe (libs.grpckit.probe) against a real server: over mTLS with the pod's own
certificate, as Kubernetes runs it in a TLS deployment, and over plaintext as in development."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from libs.config.settings import PodiumSettings
from libs.grpckit.probe import check
from libs.grpckit.server import GrpcHost

SERVICE = "podium.test.v1.TestService"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and the certificate cert-manager would give the `room` Service (server and client use)."""
    where = tmp_path_factory.mktemp("probe-pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("room", "room.podium.svc")
    ca.cert_pem.write_to_path(str(where / "ca.crt"))
    leaf.cert_chain_pems[0].write_to_path(str(where / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(where / "tls.key"))
    return {
        "PODIUM_GRPC_TLS_CERT_FILE": str(where / "tls.crt"),
        "PODIUM_GRPC_TLS_KEY_FILE": str(where / "tls.key"),
        "PODIUM_GRPC_TLS_CLIENT_CA_FILE": str(where / "ca.crt"),
        "PODIUM_GRPC_TLS_CA_FILE": str(where / "ca.crt"),
    }


async def _host(env: dict[str, str]) -> GrpcHost:
    settings = PodiumSettings(**{k.removeprefix("PODIUM_").lower(): v for k, v in env.items()})
    host = GrpcHost(settings, [SERVICE])
    await host.start("127.0.0.1:0")
    return host


async def _probe(port: int, env: dict[str, str], service: str = SERVICE, server_name: str = "room") -> str:
    return await asyncio.to_thread(check, port, service, server_name, env)


async def test_over_mtls_it_reports_not_serving_then_serving(pki):
    host = await _host(pki)
    try:
        assert await _probe(host.port, pki) == "NOT_SERVING"
        await host.serving()
        assert await _probe(host.port, pki) == "SERVING"
        assert await _probe(host.port, pki, service="") == "SERVING"  # liveness: the overall status
    finally:
        await host.server.stop(0)


async def test_it_fails_without_the_client_certificate_or_for_a_name_the_certificate_lacks(pki):
    host = await _host(pki)
    await host.serving()
    try:
        only_ca = {"PODIUM_GRPC_TLS_CA_FILE": pki["PODIUM_GRPC_TLS_CA_FILE"]}
        assert (await _probe(host.port, only_ca)).startswith("DOWN: UNAVAILABLE")
        assert (await _probe(host.port, pki, server_name="elsewhere")).startswith("DOWN: UNAVAILABLE")
        assert (await _probe(host.port, {})).startswith("DOWN: UNAVAILABLE")  # plaintext to a TLS server
    finally:
        await host.server.stop(0)


async def test_without_tls_settings_it_dials_plaintext():
    host = await _host({})
    await host.serving()
    try:
        assert await _probe(host.port, {}, server_name="") == "SERVING"
    finally:
        await host.server.stop(0)


async def test_as_a_command_its_exit_status_is_the_verdict(pki):
    host = await _host(pki)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}, **pki}
    command = [sys.executable, "-m", "libs.grpckit.probe", "--port", str(host.port), "--service", SERVICE]
    try:

        def run(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*command, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
            )

        not_yet = await asyncio.to_thread(run, "--server-name", "room")
        assert not_yet.returncode == 1, not_yet.stdout + not_yet.stderr
        assert f"{SERVICE}: NOT_SERVING" in not_yet.stdout
        await host.serving()
        ready = await asyncio.to_thread(run, "--server-name", "room")
        assert ready.returncode == 0, ready.stdout + ready.stderr
        assert f"{SERVICE}: SERVING" in ready.stdout
    finally:
        await host.server.stop(0)
