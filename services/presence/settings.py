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
    presence_gap_seconds: float | None = Field(
        None,
        gt=0,
        description="A silence this long in a partition's heartbeat records is an outage (presence or the "
        "broker stopped): the time in it counts against nobody. Unset: half the timeout. Gateways must "
        "report more often (at least every third of the timeout).",
    )
    presence_max_lag_seconds: float | None = Field(
        None,
        gt=0,
        description="Presence behind its input by more than this, or a partition with users present whose "
        "newest heartbeat record is older: no time-outs there, and podium_presence_degraded is 1. Unset: "
        "half the timeout.",
    )
    presence_brake_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="One check finding more than this share of a Space's present users overdue (and at "
        "least PODIUM_PRESENCE_BRAKE_MIN_USERS of them) holds those time-outs for one more period.",
    )
    presence_brake_min_users: int = Field(
        3, ge=1, description="The share rule of the brake applies from this many overdue users of a Space."
    )
    presence_brake_max_users: int = Field(
        1000,
        ge=0,
        description="One check of a partition finding more overdue users than this holds them all for one "
        "more period.",
    )
    presence_brake_hold_seconds: float | None = Field(
        None,
        ge=0,
        description="How long (in the heartbeat records' time) the brake holds time-outs; those still "
        "overdue after it go, marked mass_time_out. Unset: the timeout.",
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
    presence_tick_seconds: float = Field(
        1.0, gt=0, description="How often time-outs are looked for (the tick only asks; it is not evidence)."
    )
    presence_max_entries_per_report: int = Field(
        50_000, gt=0, description="Entries one ReportPresence may carry."
    )

    presence_users_per_part: int = Field(
        2_000,
        ge=1,
        le=4_000,
        description="A live Space whose presence part 0 counts more users than this (present now or earlier) "
        "is split in twice as many parts by user id, each a table value on its own partition. A part's "
        "value is written whole to the changelog, about 170 bytes a user with UUID ids, and a record over "
        "the producer's 1 MB limit stops presence: so parts stay small (at most 4,000), and one Space's "
        "heartbeats spread over presence replicas. Queries gather the parts (ADR 0015).",
    )
    presence_max_parts: int = Field(
        1024,
        ge=1,
        le=4096,
        description="The most parts one Space's presence is split into (a power of two): 1,000,000 "
        "listeners at the default users a part make 512.",
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
        timeout = self.presence_timeout_seconds
        return PresenceRules(
            timeout_seconds=timeout,
            reconnect_grace_seconds=self.presence_reconnect_grace_seconds,
            forget_ended_after_seconds=self.presence_forget_ended_after_seconds,
            gap_seconds=self.presence_gap_seconds or timeout / 2,
            pulse_every_seconds=(self.presence_gap_seconds or timeout / 2) / 2,
            max_lag_seconds=self.presence_max_lag_seconds or timeout / 2,
            brake_share=self.presence_brake_share,
            brake_min_users=self.presence_brake_min_users,
            brake_max_users=self.presence_brake_max_users,
            brake_hold_seconds=timeout
            if self.presence_brake_hold_seconds is None
            else self.presence_brake_hold_seconds,
        )
