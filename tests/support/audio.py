"""Synthetic speech-like audio for media tests: a tone per speaker, encoded to 20 ms Opus frames.

    frames = tone_frames(440, seconds=1.0)         # list of Opus packets, 20 ms each
    level = level_dbov(amplitude)                  # its RFC 6464 audio level
    decoded = decode_frames(frames)                # float32 PCM, 48 kHz mono
    dominant_frequency(decoded)                    # ~440.0

Each speaker gets a distinct frequency so an FFT tells them apart. The tone is
amplitude-modulated at 4 Hz (syllable rate) so it looks like speech to a
level meter, not a steady whistle.
"""

from __future__ import annotations

import math

import av
import numpy as np

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz


def tone_frames(
    freq_hz: float, seconds: float, amplitude: float = 0.5, syllable_hz: float = 4.0
) -> list[bytes]:
    """`seconds` of a tone at `freq_hz`, as Opus packets of 20 ms each (exactly seconds / 0.02 of them)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "flt"
    codec.bit_rate = 32_000
    codec.open()
    count = round(seconds * RATE / FRAME_SAMPLES)
    t = np.arange(count * FRAME_SAMPLES) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * syllable_hz * t) if syllable_hz else 1.0
    signal = (amplitude * envelope * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    packets: list[bytes] = []
    for i in range(count):
        frame = av.AudioFrame.from_ndarray(
            signal[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = i * FRAME_SAMPLES
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets[:count]


def level_dbov(amplitude: float) -> int:
    """RFC 6464 level of a sine of this peak amplitude (RMS relative to full scale), as -dBov in -127..0."""
    rms = amplitude / math.sqrt(2)
    return max(-127, min(0, round(20 * math.log10(max(rms, 1e-7)))))


def decode_frames(packets: list[bytes]) -> np.ndarray:
    """Opus packets -> float32 PCM (48 kHz mono)."""
    codec = av.CodecContext.create("libopus", "r")
    codec.sample_rate = RATE
    codec.layout = "mono"
    out = []
    for data in packets:
        for frame in codec.decode(av.Packet(data)):
            out.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def dominant_frequency(pcm: np.ndarray) -> float:
    """The strongest frequency in `pcm` (Hz)."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[int(np.argmax(spectrum))])
