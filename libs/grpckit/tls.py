"""TLS for Podium's gRPC servers: the credentials `GrpcHost` serves with.

A server serves TLS only, and only when given both a certificate chain
(`grpc_tls_cert_file`) and its key (`grpc_tls_key_file`); with neither it
serves plaintext, and with one of the two it refuses to start. With
`grpc_tls_client_ca_file` it also requires every client to present a
certificate signed by that CA (mTLS). The files are read once, at start: a
missing or unreadable one stops the start with a message naming its setting.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from libs.config.settings import PodiumSettings, env_name


class TlsConfigError(RuntimeError):
    """A TLS setting names a file that cannot be used; the message names the setting."""


def read_pem(setting: str, path: str) -> bytes:
    """The PEM file `path`, named by the setting `setting` (a PodiumSettings field name)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"{env_name(setting)}: cannot read {path!r}: {e.strerror or e}") from e
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"{env_name(setting)}: {path!r} is not a PEM file")
    return data


def server_credentials(settings: PodiumSettings) -> grpc.ServerCredentials | None:
    """TLS (or mTLS) server credentials from the settings, or None to serve plaintext."""
    cert, key = settings.grpc_tls_cert_file, settings.grpc_tls_key_file
    if not cert and not key:
        if settings.grpc_tls_client_ca_file:
            raise TlsConfigError(
                f"{env_name('grpc_tls_client_ca_file')} is set but the server has no certificate: "
                f"set {env_name('grpc_tls_cert_file')} and {env_name('grpc_tls_key_file')}"
            )
        return None
    if not cert or not key:
        missing = "grpc_tls_cert_file" if not cert else "grpc_tls_key_file"
        present = "grpc_tls_key_file" if not cert else "grpc_tls_cert_file"
        raise TlsConfigError(
            f"{env_name(present)} is set but {env_name(missing)} is not: set both, or neither"
        )
    chain = read_pem("grpc_tls_cert_file", cert)
    private_key = read_pem("grpc_tls_key_file", key)
    client_ca = settings.grpc_tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(private_key, chain)],
        root_certificates=read_pem("grpc_tls_client_ca_file", client_ca) if client_ca else None,
        require_client_auth=bool(client_ca),
    )
