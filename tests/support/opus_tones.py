"""Synthetic speakers for replay tests: a pure tone per speaker, recorded as the relay records it.

Builds on `tests/support/audio.py` (the relay tests' Opus helper).

    packets = tone_packets(440, seconds=2)                       # Opus packets, 20 ms each
    chunks = recording_chunks(space_id, "alice", packets, start)  # ~1 s RecordingChunks

Each speaker gets a distinct frequency so an FFT of the mix tells them apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import av
import numpy as np

from podium.media.v1 import media_types_pb2 as mt
from tests.support.audio import RATE, dominant_frequency, tone_frames

__all__ = ["band_energy", "decode_ogg", "dominant_frequency", "recording_chunks", "tone_packets"]


def tone_packets(frequency: float, seconds: float, amplitude: float = 0.4) -> list[bytes]:
    """A steady tone as 20 ms Opus packets (the relay tests' `tone_frames` without the syllable
    modulation, so an FFT finds each speaker's frequency sharply)."""
    return tone_frames(frequency, seconds, amplitude=amplitude, syllable_hz=0)


def recording_chunks(
    space_id: str,
    speaker_id: str,
    packets: list[bytes],
    start: datetime,
    *,
    relay_id: str = "relay-test",
    first_chunk: int = 0,
    frames_per_chunk: int = 50,
) -> list[mt.RecordingChunk]:
    """The packets as the relay records them: ~1 s per chunk, each frame with its capture time."""
    chunks = []
    for c, i in enumerate(range(0, len(packets), frames_per_chunk)):
        chunk = mt.RecordingChunk(
            space_id=space_id, speaker_id=speaker_id, relay_id=relay_id, chunk_sequence=first_chunk + c
        )
        for n in range(i, min(i + frames_per_chunk, len(packets))):
            frame = chunk.frames.add(speaker_id=speaker_id, sequence=n, opus=packets[n], audio_level_dbov=-10)
            frame.captured_at.FromDatetime(start + timedelta(milliseconds=20 * n))
            frame.relayed_at.FromDatetime(start + timedelta(milliseconds=20 * n + 5))
        chunks.append(chunk)
    return chunks


def decode_ogg(data: bytes) -> np.ndarray:
    """The mono float samples of an Ogg Opus file (PyAV honours the pre-skip)."""
    import io

    container = av.open(io.BytesIO(data))
    out = []
    for frame in container.decode(audio=0):
        samples = frame.to_ndarray().astype(np.float32)
        if frame.format.name.startswith("s16"):
            samples /= 32768.0
        out.append(samples.reshape(-1) if samples.shape[0] == 1 else samples.mean(axis=0))
    container.close()
    return np.concatenate(out)


def band_energy(samples: np.ndarray, frequency: float, rate: int = RATE, width: float = 30) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[(freqs > frequency - width) & (freqs < frequency + width)].sum())
