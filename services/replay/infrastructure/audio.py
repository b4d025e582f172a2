"""Mixing speakers' Opus frames into one Ogg Opus recording, with PyAV.

`mix_to_ogg` decodes every speaker's frames with a decoder of their own (Opus
decoders carry state), places each decoded frame on a common timeline at its
capture time (48 kHz samples from the earliest frame), sums the voices, and
encodes the mix as 20 ms Opus frames into an Ogg file. Gaps are silence.
Consecutive frames of one speaker are laid end to end when their capture times
are within `JITTER_SAMPLES` of that, so timestamp jitter does not click.

It streams: frames are taken in capture order, and every sample before the
current frame's start is final, so it is encoded and dropped at once. Memory
stays at a few frames whatever the length of the Space.

Beside the Ogg file it writes a frame index (`FrameIndex`): each encoded
packet's byte range in a packed packet file, so StreamReplay seeks to any
20 ms frame in O(1) without parsing Ogg pages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME = timedelta(milliseconds=20)
BIT_RATE = 32_000
# Capture timestamps jitter (a sender's clock read at send time). A speaker's next frame (sequence + 1)
# within this much of where the previous one ended is placed right after it; a lost frame (a gap in
# the sequence) or a larger jump re-anchors at the capture time, so real gaps stay silence.
JITTER_SAMPLES = 1440  # 30 ms


@dataclass(frozen=True)
class SpeakerFrame:
    speaker_id: str
    captured_at: datetime
    sequence: int
    opus: bytes


@dataclass(frozen=True)
class MixResult:
    origin: datetime
    duration: timedelta
    speaker_ids: tuple[str, ...]
    frames: int  # encoded 20 ms frames


class _Decoder:
    def __init__(self) -> None:
        self.codec = av.CodecContext.create("opus", "r")
        self.codec.sample_rate = RATE
        self.codec.layout = "mono"

    def decode(self, opus: bytes) -> np.ndarray:
        out = []
        try:
            for frame in self.codec.decode(av.Packet(opus)):
                samples = frame.to_ndarray()
                channels = len(frame.layout.channels)
                if frame.format.is_planar:
                    samples = samples[0] if channels == 1 else samples.mean(axis=0)
                else:
                    samples = (
                        samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples.reshape(-1)
                    )
                if frame.format.name.startswith("s16"):
                    samples = samples / 32768.0
                out.append(samples.astype(np.float32, copy=False))
        except av.error.InvalidDataError:
            return np.zeros(FRAME_SAMPLES, np.float32)  # a corrupt packet is a frame of silence
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def ordered(frames: Iterable[SpeakerFrame]) -> list[SpeakerFrame]:
    return sorted(frames, key=lambda f: (f.captured_at, f.speaker_id, f.sequence))


def mix_to_ogg(
    frames: list[SpeakerFrame],
    ogg_path: Path,
    packets_path: Path,
    *,
    progress: Callable[[float], None] = lambda _p: None,
) -> MixResult:
    """Mixes `frames` (any order) into `ogg_path`, and the packets + index into `packets_path`."""
    if not frames:
        raise ValueError("no frames to mix")
    frames = ordered(frames)
    origin = frames[0].captured_at
    decoders: dict[str, _Decoder] = {}
    container = av.open(str(ogg_path), "w", format="ogg")
    stream = container.add_stream("libopus", rate=RATE, layout="mono")
    stream.bit_rate = BIT_RATE
    index = FrameIndexWriter(packets_path)
    pending = np.zeros(0, np.float32)  # samples from `emitted` on
    emitted = 0  # samples encoded so far
    end = 0  # furthest sample any frame reached

    def encode(samples: np.ndarray, pts: int) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        for packet in stream.encode(frame):
            index.add(bytes(packet))
            container.mux(packet)

    def flush_until(sample: int) -> None:
        nonlocal pending, emitted
        whole = (sample - emitted) // FRAME_SAMPLES
        if whole <= 0:
            return
        take = whole * FRAME_SAMPLES
        if len(pending) < take:
            pending = np.concatenate([pending, np.zeros(take - len(pending), np.float32)])
        block = np.clip(pending[:take], -1.0, 1.0)
        for i in range(whole):
            encode(block[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES], emitted + i * FRAME_SAMPLES)
        pending = pending[take:]
        emitted += take

    total = len(frames)
    step = max(1, total // 200)
    placed: dict[str, tuple[int, int]] = {}  # speaker -> (last sequence, sample after its frame)
    for n, f in enumerate(frames):
        nominal = round((f.captured_at - origin).total_seconds() * RATE)
        flush_until(nominal - JITTER_SAMPLES)  # nothing later can land before this
        decoder = decoders.get(f.speaker_id)
        if decoder is None:
            decoder = decoders[f.speaker_id] = _Decoder()
        samples = decoder.decode(f.opus)
        if not len(samples):
            continue
        start = nominal
        previous = placed.get(f.speaker_id)
        if previous and f.sequence == previous[0] + 1 and abs(nominal - previous[1]) <= JITTER_SAMPLES:
            start = previous[1]  # the next frame of a run: contiguous, whatever the capture jitter
        start = max(start, emitted)
        placed[f.speaker_id] = (f.sequence, start + len(samples))
        offset = start - emitted
        needed = offset + len(samples)
        if len(pending) < needed:
            pending = np.concatenate([pending, np.zeros(needed - len(pending), np.float32)])
        pending[offset:needed] += samples
        end = max(end, start + len(samples))
        if n % step == 0:
            progress(n / total)
    last = -(-end // FRAME_SAMPLES) * FRAME_SAMPLES  # up to a whole frame
    flush_until(last)
    for packet in stream.encode(None):
        index.add(bytes(packet))
        container.mux(packet)
    container.close()
    index.close()
    progress(1.0)
    return MixResult(origin, timedelta(seconds=end / RATE), tuple(sorted(decoders)), index.count)


# The packet file: a header, then the packets back to back, then the index of
# (offset, length) pairs, then the index's position. One 20 ms frame per packet.
_MAGIC = b"PDMX1\n"
_ENTRY = struct.Struct("<QI")


class FrameIndexWriter:
    def __init__(self, path: Path):
        self.file = open(path, "wb")
        self.file.write(_MAGIC)
        self.entries: list[tuple[int, int]] = []

    @property
    def count(self) -> int:
        return len(self.entries)

    def add(self, packet: bytes) -> None:
        self.entries.append((self.file.tell(), len(packet)))
        self.file.write(packet)

    def close(self) -> None:
        at = self.file.tell()
        for offset, length in self.entries:
            self.file.write(_ENTRY.pack(offset, length))
        self.file.write(struct.pack("<QQ", at, len(self.entries)))
        self.file.close()


class FrameIndex:
    """Reads packets by frame number from a packet file opened for reading.

    Only the 16-byte trailer is read up front; index entries are read in blocks
    as the packets are, so starting (or seeking) costs the same for a two-hour
    recording as for a minute.
    """

    BLOCK = 256

    def __init__(self, file):
        self.file = file
        file.seek(-16, 2)
        self.at, self.count = struct.unpack("<QQ", file.read(16))

    def __len__(self) -> int:
        return self.count

    def packets(self, first: int) -> Iterator[tuple[int, bytes]]:
        """(frame number, packet) from frame `first` on."""
        n = max(0, first)
        while n < self.count:
            block = min(self.BLOCK, self.count - n)
            self.file.seek(self.at + n * _ENTRY.size)
            raw = self.file.read(block * _ENTRY.size)
            for i in range(block):
                offset, length = _ENTRY.unpack_from(raw, i * _ENTRY.size)
                self.file.seek(offset)
                yield n + i, self.file.read(length)
            n += block
