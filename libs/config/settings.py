"""The settings every Podium process shares, read from environment variables.

Each service extends `PodiumSettings` with its own fields. The README's
configuration table lists every variable; keep the two in step.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.auth.keys import KeyConfigurationError, parse_previous_secrets
from libs.config.production import hs256_key_problem, local_addresses

DEV_JWT_SECRET = "podium-dev-secret-change-me-in-production"


def env_name(field: str) -> str:
    """The environment variable that sets a `PodiumSettings` field, for messages that name it."""
    return f"PODIUM_{field.upper()}"


class PodiumSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODIUM_", extra="ignore", populate_by_name=True)

    env: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses to start with any development default (secret, plaintext, "
        "loopback addresses); see docs/security.md.",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "PODIUM_DATABASE_URL"),
        description="PostgreSQL DSN; each service keeps its events in its own schema.",
    )
    database_pool_size: int = Field(10, ge=1, description="Connections per service process.")
    migrate_database_url: str = Field(
        "",
        description="PostgreSQL DSN `podium migrate` uses: the schemas' owner, who may create and change "
        "tables (the services' role may not). Empty: DATABASE_URL.",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PODIUM_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_enable_idempotence: bool = Field(
        False, description="Idempotent producer; keep off against brokers that lack InitProducerId."
    )
    log_hole_seconds: float = Field(
        default=30.0,
        description="How long a hole in a stream's versions may stay open, with its partition read to its end, before a consumer takes the log as lost and stops reading that partition.",
    )
    kafka_group_session_timeout_seconds: float = Field(
        6.0,
        ge=1.0,
        le=300.0,
        description="How long a consumer-group member (the faust services' replicas) may go without a "
        "heartbeat before the group gives its partitions to the others. Kafka's brokers refuse values "
        "below their group.min.session.timeout.ms (6 s by default); the dev broker takes less, and "
        "`podium up` and the tests use 2 s so a replica's join and takeover take seconds, not ten.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        description="Longest a consumer's fetch waits when there is nothing to read. Kafka answers a "
        "waiting fetch as soon as records arrive, so this bounds only how often an idle consumer asks "
        "(Kafka's own default). The embedded dev broker answers on its own schedule instead, so "
        "`podium up`, the tests and the benchmarks set 20 ms (ADR 0016).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How Kafka clients connect: TLS (`SSL`), SASL, both, or neither."
    )
    kafka_ssl_ca_file: str = Field("", description="PEM CA bundle that signs the brokers' certificates.")
    kafka_ssl_cert_file: str = Field("", description="PEM client certificate, for brokers that require mTLS.")
    kafka_ssl_key_file: str = Field("", description="PEM private key of `kafka_ssl_cert_file`.")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str = Field("", description="SASL user (a Strimzi KafkaUser's name).")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password.")
    topic_partitions: int = Field(6, ge=1, description="Partitions of event topics created at start-up.")
    topic_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET), description="HS256 key that signs bearer tokens."
    )
    jwt_key_id: str = Field(
        "dev", description="`kid` of `jwt_secret`: tokens naming this kid (or none) verify with it."
    )
    jwt_previous_secrets: SecretStr = Field(
        SecretStr(""),
        description="HS256 keys still accepted while tokens signed with them expire, as `kid=secret` "
        "pairs separated by commas (key rotation); only tokens naming one of these kids verify.",
    )
    jwt_jwks_file: str = Field(
        "",
        description="Path of a JWKS file of public keys (EdDSA or RS256, each with a `kid`) for an issuer "
        "that must not hold the services' HS256 secret.",
    )
    jwt_audience: str = Field("podium", description="Required `aud` claim of bearer tokens.")
    jwt_leeway_seconds: int = Field(10, ge=0, description="Clock skew allowed when checking exp and nbf.")
    grpc_tls_cert_file: str = Field(
        "",
        description="PEM certificate chain the gRPC server presents; with the key, the server serves TLS only.",
    )
    grpc_tls_key_file: str = Field("", description="PEM private key of `grpc_tls_cert_file`.")
    grpc_tls_client_ca_file: str = Field(
        "",
        description="PEM CA bundle; when set, the server requires client certificates signed by it (mTLS).",
    )
    grpc_tls_ca_file: str = Field(
        "", description="PEM CA bundle a service trusts when it calls other Podium services (peers) over TLS."
    )
    grpc_max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted."
    )
    grpc_max_connection_age_seconds: float = Field(
        300.0,
        ge=0,
        description="A client connection is asked to go away (GOAWAY) after this long, with gRPC's "
        "jitter of +-10%, so long-lived client connections spread over new replicas after a "
        "scale-out; 0: never.",
    )
    grpc_max_connection_age_grace_seconds: float = Field(
        -1.0,
        ge=-1,
        description="Calls still running on a connection that was asked to go away get this long to "
        "end before it is closed; -1: as long as they run (a listener's audio stream is never cut).",
    )
    shutdown_grace_seconds: float = Field(10.0, ge=0, description="Time to drain calls on SIGTERM.")
    rate_limit_joins_per_minute: int = Field(
        30, ge=0, description="JoinSpace calls per user per minute (0: no limit)."
    )
    rate_limit_reports_per_minute: int = Field(
        10, ge=0, description="ReportSpace and ReportParticipant calls per user per minute (0: no limit)."
    )
    rate_limit_speak_requests_per_minute: int = Field(
        10, ge=0, description="RequestToSpeak calls per user per minute (0: no limit)."
    )
    rate_limit_invites_per_minute: int = Field(
        20, ge=0, description="InviteUsers and CreateInviteLink calls per user per minute (0: no limit)."
    )
    idempotency_retention_seconds: float = Field(
        86400,
        gt=0,
        description="How long a mutation's stored answer is kept for retries with the same request_id.",
    )
    idempotency_purge_interval_seconds: float = Field(
        300, gt=0, description="How often idempotency records older than the retention are deleted."
    )
    log_level: str = Field("INFO", description="Python log level.")
    kafka_client_log_level: str = Field(
        "WARNING", description="Log level of the Kafka client library (aiokafka); DEBUG shows every request."
    )
    metrics_port: int = Field(
        9464,
        ge=-1,
        le=65535,
        description="Port of the Prometheus /metrics endpoint; 0 picks a free port, -1 disables it.",
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description="`json`: one JSON object per line (with trace, span and Space ids); `text` for terminals.",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "uvloop",
        description="Event loop implementation; uvloop is faster, asyncio is the standard library's.",
    )

    #: Whether the service keeps state in PostgreSQL; analytics does not, and leaves
    #: `database_url` at its default.
    uses_database: ClassVar[bool] = True
    # A process that never touches Kafka (the client gateway) is not judged on its Kafka settings.
    uses_kafka: ClassVar[bool] = True

    def production_problems(self) -> list[str]:
        """What makes these settings unsafe in production: one line per setting, naming its
        environment variable (empty: nothing). Pure. Each service's settings extend it with their
        own rules; `libs.config.production` refuses to start on any."""
        problems = []
        if problem := hs256_key_problem(self.jwt_secret.get_secret_value(), DEV_JWT_SECRET):
            problems.append(f"PODIUM_JWT_SECRET {problem}")
        try:
            previous = list(parse_previous_secrets(self.jwt_previous_secrets.get_secret_value()))
        except KeyConfigurationError:
            previous = []  # malformed: the key set refuses it at start, with its own message
        weak = [
            f"the key of kid {k.kid!r} {problem}"
            for k in previous
            if (problem := hs256_key_problem(k.key, DEV_JWT_SECRET))
        ]
        if weak:
            problems.append(f"PODIUM_JWT_PREVIOUS_SECRETS has unsafe keys: {'; '.join(weak)}")
        for field, what in (
            ("grpc_tls_cert_file", "a certificate chain"),
            ("grpc_tls_key_file", "the certificate's private key"),
        ):
            if not getattr(self, field):
                problems.append(
                    f"PODIUM_{field.upper()} is unset: the gRPC server would serve plaintext; give it {what}"
                )
        if self.uses_kafka and self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            problems.append(
                f"PODIUM_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: Kafka traffic "
                "would be unencrypted; use SSL or SASL_SSL"
            )
        servers = [s for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        if self.uses_kafka and (local := local_addresses(servers)):
            problems.append(
                f"KAFKA_BOOTSTRAP_SERVERS names this machine ({', '.join(local)}): set your brokers' addresses"
            )
        if self.uses_kafka and self.topic_replication_factor < 2:
            problems.append(
                f"PODIUM_TOPIC_REPLICATION_FACTOR is {self.topic_replication_factor}: topics a service "
                "creates would live on one broker, and be lost with it; set 3"
            )
        if self.uses_database and self.database_url == type(self).model_fields["database_url"].default:
            problems.append(
                f"DATABASE_URL is the development default ({self.database_url}); set your database's URL"
            )
        return problems
