"""The media relay's settings: the shared ones plus its port, identity, timings and buffers."""

from __future__ import annotations

from pydantic import Field

from libs.config.settings import PodiumSettings
from services.media_relay.domain.talking import TalkingPolicy


class MediaRelaySettings(PodiumSettings):
    media_relay_port: int = Field(50054, ge=0, le=65535, description="Port of the media relay gRPC server.")
    media_relay_bind_host: str = Field("0.0.0.0", description="Interface the media relay gRPC server binds.")
    media_relay_id: str = Field(
        "relay-0", description="This instance's id on the room service's hash ring; stamped on recordings."
    )
    media_relay_tick_ms: float = Field(
        20, gt=0, le=1000, description="Fan-out tick: one message per subscriber bundles this much audio."
    )
    media_relay_subscriber_queue_ticks: int = Field(
        50, ge=1, description="Ticks a subscriber may fall behind before its oldest are dropped (50 = 1 s)."
    )
    media_relay_admission_wait_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a Subscribe waits for the relay's view to see a Space start or a user join "
        "before refusing it (the view lags the room by the log's delivery time).",
    )
    media_relay_forget_ended_after_seconds: float = Field(
        60.0,
        ge=0,
        description="How long an ended Space stays in the relay's memory (frames and subscriptions racing "
        "its end are told it ended); after that its row in PostgreSQL says so.",
    )
    media_relay_recording_chunk_frames: int = Field(
        50, ge=1, description="Frames per recording record, per speaker (50 x 20 ms = 1 s)."
    )
    media_relay_recording_queue_frames: int = Field(
        20000, ge=1, description="Frames waiting to be recorded before new ones are dropped (and counted)."
    )
    media_relay_talking_threshold_dbov: int = Field(
        -45, ge=-127, le=0, description="Audio level at or above which a frame counts as talking."
    )
    media_relay_talking_hangover_ms: int = Field(
        400, ge=0, description="Silence after which a speaker counts as stopped talking."
    )

    def talking_policy(self) -> TalkingPolicy:
        return TalkingPolicy(
            threshold_dbov=self.media_relay_talking_threshold_dbov,
            hangover_ms=self.media_relay_talking_hangover_ms,
        )
