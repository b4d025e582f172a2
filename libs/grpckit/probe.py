"""A Kubernetes exec probe for a service that serves TLS: the standard health check, over TLS.

    python -m libs.grpckit.probe --port 50051 --service podium.room.v1.RoomService --server-name room

Kubernetes' native gRPC probes cannot speak TLS (docs/decisions/0001-health-probes-under-tls.md).
This one runs inside the container, so it has the container's environment: it
dials 127.0.0.1 the way the service's peers do (`libs.grpckit.channels`): TLS when
`PODIUM_GRPC_TLS_CA_FILE` is set or the service serves TLS itself, offering the
pod's own certificate as a client certificate (mTLS), and checking the
server's certificate for `--server-name`, a name it covers (the Service's).
Without those variables it dials plaintext.

Exit status 0 when the health service answers SERVING for `--service` (the
overall status when omitted), 1 for any other answer or none; one line on stdout
says which, for `kubectl describe pod`.

It runs every few seconds in every pod, so it imports grpc and the health
stubs only: not the settings (pydantic), which would triple its start-up time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(variable: str, env: Mapping[str, str]) -> bytes:
    path = env[variable]
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise SystemExit(f"probe: {variable}: cannot read {path!r}: {e.strerror or e}") from e


def credentials(env: Mapping[str, str]) -> grpc.ChannelCredentials | None:
    """What `libs.grpckit.channels.ClientTls.from_env(env).credentials()` gives, read directly."""
    ca = env.get("PODIUM_GRPC_TLS_CA_FILE", "")
    cert, key = env.get("PODIUM_GRPC_TLS_CERT_FILE", ""), env.get("PODIUM_GRPC_TLS_KEY_FILE", "")
    if not ca and not (cert and key):
        return None
    roots = _read("PODIUM_GRPC_TLS_CA_FILE", env) if ca else None
    if cert and key:
        return grpc.ssl_channel_credentials(
            root_certificates=roots,
            private_key=_read("PODIUM_GRPC_TLS_KEY_FILE", env),
            certificate_chain=_read("PODIUM_GRPC_TLS_CERT_FILE", env),
        )
    return grpc.ssl_channel_credentials(root_certificates=roots)


def check(
    port: int,
    service: str = "",
    server_name: str = "",
    env: Mapping[str, str] = os.environ,
    timeout: float = 3.0,
) -> str:
    """SERVING, NOT_SERVING, ... as the health service answers; or `DOWN: <why>`."""
    address = f"127.0.0.1:{port}"
    creds = credentials(env)
    if creds is None:
        channel = grpc.insecure_channel(address)
    else:
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(address, creds, options=options)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as e:
            return f"DOWN: {e.code().name}: {e.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="the service's gRPC port")
    parser.add_argument("--service", default="", help="health service name (default: overall)")
    parser.add_argument("--server-name", default="", help="a name the server's certificate covers")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    status = check(args.port, args.service, args.server_name, timeout=args.timeout)
    print(f"{args.service or '(overall)'}: {status}", flush=True)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
