"""The settings every Podium process shares, read from environment variables.

Each service extends `PodiumSettings` with its own fields. The README's
configuration table lists every variable; keep the two in step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "podium-dev-secret-change-me-in-production"


class PodiumSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODIUM_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "PODIUM_DATABASE_URL"),
        description="PostgreSQL DSN; each service keeps its events in its own schema.",
    )
    database_pool_size: int = Field(10, ge=1, description="Connections per service process.")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "PODIUM_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_enable_idempotence: bool = Field(
        False, description="Idempotent producer; keep off against brokers that lack InitProducerId."
    )
    kafka_fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        description="Longest a consumer's fetch waits for data; lower means fresher views, more polling.",
    )
    topic_partitions: int = Field(6, ge=1, description="Partitions of event topics created at start-up.")
    topic_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET), description="HS256 key that signs bearer tokens."
    )
    jwt_audience: str = Field("podium", description="Required `aud` claim of bearer tokens.")
    jwt_leeway_seconds: int = Field(10, ge=0, description="Clock skew allowed when checking exp and nbf.")
    grpc_max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted."
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
