"""The presence service's settings."""

from __future__ import annotations

from pydantic import Field

from libs.config.production import is_local_host
from libs.config.settings import PodiumSettings
from services.presence.domain.space_presence import PresenceRules


class PresenceSettings(PodiumSettings):
    # Its faust table lives in a changelog topic; the "who's here" board in its `presence` schema.

    presence_port: int = Field(50052, ge=0, le=65535, description="Port of the presence gRPC server.")
    presence_bind_host: str = Field("0.0.0.0", description="Interface the presence gRPC server binds.")
    presence_advertised_host: str = Field(
        "127.0.0.1",
        description="The address other presence replicas reach this one's gRPC server at (in Kubernetes, "
        "the pod IP); queries about a Space are forwarded to the replica that owns it.",
    )
    presence_standby_replicas: int = Field(
        1,
        ge=0,
        description="Standby copies of each table partition kept warm on other replicas, for a quick "
        "takeover when a replica dies. Queries are always answered by the owning replica.",
    )
    presence_timeout_seconds: float = Field(
        30, gt=0, description="Missed heartbeats for this long drop a user."
    )
    presence_reconnect_grace_seconds: float = Field(
        60, ge=0, description="A user back within this long after a timeout is a reconnect, not a new join."
    )
    presence_forget_ended_after_seconds: float = Field(
        60,
        ge=0,
        description="An ended Space's presence is dropped from the table (and its changelog), and its "
        "board from memory, this long after the end, so memory and recovery follow live Spaces, not "
        "history; the board's rows in PostgreSQL answer for it from then on.",
    )
    presence_tick_seconds: float = Field(1.0, gt=0, description="How often timeouts are checked.")
    presence_max_entries_per_report: int = Field(
        50_000, gt=0, description="Entries one ReportPresence may carry."
    )

    presence_producer_batch_bytes: int = Field(
        16_384,
        ge=1,
        description="batch.size of the stream producer (table changelog, events, ticks).",
    )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if is_local_host(self.presence_advertised_host):
            problems.append(
                f"PODIUM_PRESENCE_ADVERTISED_HOST is {self.presence_advertised_host}: other presence "
                "replicas cannot reach this one there; set the pod's address or DNS name"
            )
        return problems

    def rules(self) -> PresenceRules:
        return PresenceRules(
            self.presence_timeout_seconds,
            self.presence_reconnect_grace_seconds,
            self.presence_forget_ended_after_seconds,
        )
