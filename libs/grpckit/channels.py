"""Channels to Podium services: TLS when the process is configured for it, plaintext otherwise.

Every place a Podium process dials a Podium service (a presence replica
asking the owner of a Space, the dev supervisor's health probe, the demo)
opens its channel here, so they all follow the same settings:

- TLS when `grpc_tls_ca_file` is set (the CA the services' certificates are
  signed by) or when the process itself serves TLS (`grpc_tls_cert_file` and
  `grpc_tls_key_file`: its peers then serve TLS too, and with no CA file the
  system's roots are trusted);
- with its own certificate and key, when it has them, offered as a client
  certificate: a server that requires one (mTLS) gets it, and one that does
  not never asks. The certificate must allow client use (extended key usage
  `clientAuth` as well as `serverAuth`);
- plaintext otherwise (the dev stack).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from libs.config.settings import PodiumSettings, env_name
from libs.grpckit.tls import read_pem

_FIELDS = ("grpc_tls_ca_file", "grpc_tls_cert_file", "grpc_tls_key_file")


@dataclass(frozen=True)
class ClientTls:
    """The TLS settings a process dials Podium services with (file paths; empty: not set)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_settings(cls, settings: PodiumSettings) -> ClientTls:
        return cls(*(getattr(settings, name) for name in _FIELDS))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientTls:
        """From a process environment (`PODIUM_GRPC_TLS_CA_FILE` and so on), for a tool that starts
        a service and must call it the way the service's own peers would."""
        return cls(*(env.get(env_name(name), "") for name in _FIELDS))

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file or (self.cert_file and self.key_file))

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials, or None for plaintext. Reads the files now."""
        if not self.enabled:
            return None
        roots = read_pem("grpc_tls_ca_file", self.ca_file) if self.ca_file else None
        if self.cert_file and self.key_file:
            return grpc.ssl_channel_credentials(
                root_certificates=roots,
                private_key=read_pem("grpc_tls_key_file", self.key_file),
                certificate_chain=read_pem("grpc_tls_cert_file", self.cert_file),
            )
        return grpc.ssl_channel_credentials(root_certificates=roots)


def dial(
    address: str, tls: ClientTls | None = None, options: Sequence[tuple[str, object]] | None = None
) -> grpc.aio.Channel:
    """An asyncio channel to the Podium service at `address` (host:port)."""
    credentials = tls.credentials() if tls else None
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)
