"""Checks on incoming audio frames: pure, raising INVALID_ARGUMENT with field violations."""

from __future__ import annotations

from libs.domain.errors import Validator
from libs.domain.identifiers import MAX_ID_LENGTH
from podium.media.v1 import media_types_pb2 as mt

MAX_OPUS_BYTES = 1275  # RFC 6716: the largest Opus packet
MIN_LEVEL_DBOV, MAX_LEVEL_DBOV = -127, 0  # RFC 6464


def validate_frame(frame: mt.AudioFrame, index: int) -> None:
    v = Validator()
    v.check(0 < len(frame.space_id) <= MAX_ID_LENGTH, "frame.space_id", "required, at most 128 characters")
    v.check(
        0 < len(frame.speaker_id) <= MAX_ID_LENGTH, "frame.speaker_id", "required, at most 128 characters"
    )
    v.check(0 < len(frame.opus) <= MAX_OPUS_BYTES, "frame.opus", f"1 to {MAX_OPUS_BYTES} bytes of Opus")
    v.check(
        MIN_LEVEL_DBOV <= frame.audio_level_dbov <= MAX_LEVEL_DBOV,
        "frame.audio_level_dbov",
        f"between {MIN_LEVEL_DBOV} and {MAX_LEVEL_DBOV} dBov",
    )
    v.raise_if_any(f"frame {index} is invalid")
