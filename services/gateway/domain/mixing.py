"""What one listener hears in one 20 ms tick: pure decisions, no codecs.

The relay sends a tick with the Opus frames its speakers sent since the last
one: usually one per speaker, sometimes two of one speaker when their frames
arrived bunched. A listener never hears their own voice (mix-minus), so the
voices that reach them are the tick's less their own. With none, they get
silence; with one voice, its frames are forwarded as they are, in order (no
decode, no re-encode: the usual case of one person talking at a time); with
more, the gateway decodes each voice, sums them and encodes the sum once per
distinct set of voices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TickFrame:
    speaker_id: str
    opus: bytes


@dataclass(frozen=True)
class Silence:
    pass


@dataclass(frozen=True)
class PassThrough:
    opus: tuple[bytes, ...]  # one voice's frames, in order


@dataclass(frozen=True)
class Mix:
    # The voices to sum, by speaker id, in the tick's order: the key their encoded sum is shared by.
    speaker_ids: tuple[str, ...]


Plan = Silence | PassThrough | Mix

SILENCE = Silence()


def voices(frames: Sequence[TickFrame]) -> tuple[str, ...]:
    """The speakers of a tick, in the order their first frame came."""
    return tuple(dict.fromkeys(f.speaker_id for f in frames))


def plan_for(frames: Sequence[TickFrame], listener_id: str) -> Plan:
    """What `listener_id` gets from one tick's `frames`."""
    heard = tuple(v for v in voices(frames) if v != listener_id)
    if not heard:
        return SILENCE
    if len(heard) == 1:
        return PassThrough(tuple(f.opus for f in frames if f.speaker_id == heard[0]))
    return Mix(heard)


def mixed(voices: Sequence[np.ndarray]) -> np.ndarray:
    """The sum of float PCM voices (-1..1), clipped, as long as the longest."""
    length = max(len(v) for v in voices)
    out = np.zeros(length, np.float32)
    for voice in voices:
        out[: len(voice)] += voice
    return np.clip(out, -1.0, 1.0)


def level_dbov(pcm: np.ndarray) -> int:
    """RFC 6464 audio level of float PCM: 0 is loudest, -127 silence (the relay's talking detector
    reads it)."""
    if len(pcm) == 0:
        return -127
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    if rms <= 1e-7:
        return -127
    return max(-127, min(0, round(20 * np.log10(rms))))
