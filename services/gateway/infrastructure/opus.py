"""Opus with PyAV (libopus): a decoder per voice, an encoder per stream, 20 ms mono frames at 48 kHz.

Both carry state across frames (prediction, the encoder's look-ahead), so each
voice keeps its decoder and each encoded stream its encoder for as long as it lasts.
"""

from __future__ import annotations

import av
import numpy as np

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
BIT_RATE = 32_000


class Decoder:
    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libopus", "r")
        self.codec.sample_rate = RATE
        self.codec.layout = "mono"

    def decode(self, opus: bytes) -> np.ndarray:
        """One packet as float PCM; a corrupt packet is a frame of silence."""
        try:
            frames = self.codec.decode(av.Packet(opus))
        except av.error.InvalidDataError:
            return np.zeros(FRAME_SAMPLES, np.float32)
        return pcm_of(frames)


def pcm_of(frames) -> np.ndarray:
    """Decoded PyAV audio frames (any layout, s16 or float, packed or planar) as mono float32."""
    out = []
    for frame in frames:
        samples = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            samples = samples.mean(axis=0) if channels > 1 else samples.reshape(-1)
        else:
            samples = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples.reshape(-1)
        if frame.format.name.startswith("s16"):
            samples = samples / 32768.0
        out.append(np.asarray(samples, np.float32))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


class Encoder:
    """Float PCM in, one Opus packet per full 20 ms out (the relay's frame size)."""

    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.sample_rate = RATE
        self.codec.layout = "mono"
        self.codec.format = "flt"
        self.codec.bit_rate = BIT_RATE
        # Speech, and the lowest look-ahead libopus offers: latency matters more than music quality.
        self.codec.options = {"application": "lowdelay", "frame_duration": "20"}
        self.codec.open()
        self.pts = 0
        self.pending = np.zeros(0, np.float32)

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        self.pending = np.concatenate([self.pending, pcm.astype(np.float32, copy=False)])
        packets: list[bytes] = []
        while len(self.pending) >= FRAME_SAMPLES:
            chunk, self.pending = self.pending[:FRAME_SAMPLES], self.pending[FRAME_SAMPLES:]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = RATE
            frame.pts = self.pts
            self.pts += FRAME_SAMPLES
            packets.extend(bytes(p) for p in self.codec.encode(frame))
        return packets


def silence_packet() -> bytes:
    """One 20 ms Opus packet of silence, for ticks in which nobody a listener hears talked."""
    encoder = Encoder()
    for _ in range(10):  # past the encoder's look-ahead
        packets = encoder.encode(np.zeros(FRAME_SAMPLES, np.float32))
        if packets:
            last = packets[-1]
    return last
