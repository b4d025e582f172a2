"""The replay service's settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import PurePosixPath

from pydantic import Field

from libs.config.settings import PodiumSettings


class ReplaySettings(PodiumSettings):
    replay_port: int = Field(50055, ge=0, le=65535, description="Port of the replay gRPC server.")
    replay_bind_host: str = Field("0.0.0.0", description="Interface the replay gRPC server binds.")
    replay_blob_dir: str = Field(
        ".podium/replays",
        description="Directory of the local blob store that holds recordings (a PersistentVolume in Kubernetes).",
    )
    replay_retention_days: float = Field(
        30, ge=0, description="How long a replay is kept after it is finalized; then it is deleted."
    )
    replay_retention_sweep_seconds: float = Field(
        60, gt=0, description="How often expired replays are looked for."
    )
    replay_finalize_delay_seconds: float = Field(
        2.0,
        ge=0,
        description="Wait after a recorded Space ends before finalizing, for the relay's last chunks to land.",
    )
    replay_finalize_poll_seconds: float = Field(
        1.0, gt=0, description="How often the finalizer looks for jobs when nothing woke it."
    )

    replay_catalog_cache_spaces: int = Field(
        10_000,
        gt=0,
        description="Spaces whose catalog entry is kept in memory while they are applied (live ones); "
        "an ended Space leaves at once, and a miss is read back from PostgreSQL.",
    )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not PurePosixPath(self.replay_blob_dir).is_absolute():
            problems.append(
                f"PODIUM_REPLAY_BLOB_DIR is {self.replay_blob_dir}, relative to wherever the process "
                "starts (the development default is .podium/replays); set the recordings volume's path"
            )
        return problems

    def retention(self) -> timedelta:
        return timedelta(days=self.replay_retention_days)
