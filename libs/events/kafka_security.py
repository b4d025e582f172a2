"""How every Podium Kafka client connects: plaintext, TLS, SASL (SCRAM), or SASL over TLS.

`kafka_security(settings)` is the one place the settings become client
options; every aiokafka client Podium makes (producers, readers, admin
clients) takes them as keyword arguments, and `faust_credentials` hands the
same options to faust apps as `broker_credentials`.

- `SSL` and `SASL_SSL` verify the brokers against `kafka_ssl_ca_file` (the
  system's roots when it is empty) and check their host names; with
  `kafka_ssl_cert_file` and `kafka_ssl_key_file` the client also presents a
  certificate (brokers that authenticate clients by TLS).
- `SASL_PLAINTEXT` and `SASL_SSL` log in as `kafka_sasl_username` with
  `kafka_sasl_password`, by `kafka_sasl_mechanism` (SCRAM-SHA-512 unless set).

Files are read when the options are made, so a missing CA file stops the
client's creation (at start-up) with a message naming the setting, and a
setting that the protocol would ignore (a CA file with PLAINTEXT, a SASL user
without SASL) is refused rather than silently unused.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from libs.config.settings import PodiumSettings, env_name


class KafkaSecurityError(ValueError):
    """The Kafka security settings cannot be used as given; the message names the setting."""


def _readable(setting: str, path: str) -> str:
    try:
        with Path(path).open("rb"):
            pass
    except OSError as e:
        raise KafkaSecurityError(f"{env_name(setting)}: cannot read {path!r}: {e.strerror or e}") from e
    return path


def kafka_ssl_context(settings: PodiumSettings) -> ssl.SSLContext:
    """The TLS context Kafka clients verify brokers with (and present a client certificate from)."""
    ca, cert, key = settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file
    if bool(cert) != bool(key):
        missing = "kafka_ssl_key_file" if cert else "kafka_ssl_cert_file"
        raise KafkaSecurityError(
            f"{env_name(missing)} is not set: a client certificate needs both file and key"
        )
    try:
        return create_ssl_context(
            cafile=_readable("kafka_ssl_ca_file", ca) if ca else None,
            certfile=_readable("kafka_ssl_cert_file", cert) if cert else None,
            keyfile=_readable("kafka_ssl_key_file", key) if key else None,
        )
    except ssl.SSLError as e:
        raise KafkaSecurityError(
            f"{env_name('kafka_ssl_ca_file')}, {env_name('kafka_ssl_cert_file')} or {env_name('kafka_ssl_key_file')}: "
            f"not usable PEM ({e})"
        ) from e


def kafka_security(settings: PodiumSettings) -> dict[str, Any]:
    """aiokafka's connection-security keyword arguments (`security_protocol`, `ssl_context`,
    `sasl_mechanism`, `sasl_plain_username`, `sasl_plain_password`) from the settings."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = kafka_ssl_context(settings)
    else:
        for setting in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
            if getattr(settings, setting):
                raise KafkaSecurityError(
                    f"{env_name(setting)} is set but {env_name('kafka_security_protocol')} is {protocol}: "
                    "use SSL or SASL_SSL, or unset it"
                )
    password = settings.kafka_sasl_password.get_secret_value()
    if protocol.startswith("SASL"):
        for setting, value in (
            ("kafka_sasl_username", settings.kafka_sasl_username),
            ("kafka_sasl_password", password),
        ):
            if not value:
                raise KafkaSecurityError(f"{env_name(setting)} is not set, and {protocol} needs it")
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password,
        )
    elif settings.kafka_sasl_username or password:
        raise KafkaSecurityError(
            f"{env_name('kafka_sasl_username')} or {env_name('kafka_sasl_password')} is set but "
            f"{env_name('kafka_security_protocol')} is {protocol}: use SASL_SSL or SASL_PLAINTEXT, or unset them"
        )
    return options
