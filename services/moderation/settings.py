"""The moderation service's settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from libs.config.settings import PodiumSettings
from services.moderation.domain.limits import ModerationLimits


class ModerationSettings(PodiumSettings):
    moderation_port: int = Field(50053, ge=0, le=65535, description="Port of the moderation gRPC server.")
    moderation_bind_host: str = Field("0.0.0.0", description="Interface the moderation gRPC server binds.")
    moderation_auto_mute_reports: int = Field(
        3, ge=1, description="Distinct reporters of one speaker that mute them pending review."
    )
    moderation_auto_mute_window_seconds: float = Field(
        120, gt=0, description="The window those reports must fall in."
    )
    moderation_roles_cache_spaces: int = Field(
        10_000,
        ge=1,
        description="Spaces whose roles the room-roles view keeps in memory while applying their events "
        "(live ones, in practice); others are read from PostgreSQL.",
    )
    moderation_producer_batch_bytes: int = Field(
        16_384,
        ge=1,
        description="batch.size of the report-window stream's producer (its table changelog).",
    )

    def limits(self) -> ModerationLimits:
        return ModerationLimits(
            auto_mute_reports=self.moderation_auto_mute_reports,
            auto_mute_window=timedelta(seconds=self.moderation_auto_mute_window_seconds),
        )
