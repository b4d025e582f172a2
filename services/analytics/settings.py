"""The analytics service's settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from libs.config.settings import PodiumSettings


class AnalyticsSettings(PodiumSettings):
    uses_database: ClassVar[bool] = False  # its tables live in changelog topics

    analytics_port: int = Field(
        50056, ge=0, le=65535, description="Port of the analytics gRPC server (health only)."
    )
    analytics_bind_host: str = Field("0.0.0.0", description="Interface the analytics server binds.")
    analytics_window_seconds: int = Field(
        60, gt=0, description="Width of the listener-concurrency windows and of the live SpaceStats cadence."
    )
    analytics_lateness_seconds: float = Field(
        5.0, ge=0, description="How long after its end a quiet window stays open for late events."
    )
    analytics_tick_seconds: float = Field(5.0, gt=0, description="How often the clock closes quiet windows.")
    analytics_forget_ended_after_seconds: float = Field(
        3600,
        ge=0,
        description="An ended Space's figures stay this long for late talking and replay events, then "
        "leave the tables (tombstones in their changelogs), so memory follows live Spaces.",
    )
    analytics_app_id: str = Field(
        "podium-analytics",
        description="faust app id: the consumer group and the tables' changelog names. A new id rebuilds from the log.",
    )
    analytics_producer_batch_bytes: int = Field(
        16_384,
        ge=1,
        description="batch.size of the stream producer (table changelogs and the derived topics).",
    )
