"""Mixing speakers' Opus frames on one timeline, with real Opus through PyAV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.replay.infrastructure.audio import FrameIndex, SpeakerFrame, mix_to_ogg
from services.replay.infrastructure.blob_store import LocalDirectoryBlobStore
from tests.support.opus_tones import band_energy, decode_ogg, tone_packets

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RATE = 48_000


def frames(speaker: str, packets: list[bytes], start: float) -> list[SpeakerFrame]:
    return [
        SpeakerFrame(speaker, T0 + timedelta(seconds=start, milliseconds=20 * i), i, p)
        for i, p in enumerate(packets)
    ]


def test_overlapping_voices_are_summed_and_a_gap_is_silence(tmp_path):
    a = frames("a", tone_packets(440, 1.0), 0.0)
    b = frames("b", tone_packets(1000, 1.0), 0.5)  # overlaps a from 0.5 s
    c = frames("c", tone_packets(440, 0.5), 2.5)  # after a one-second gap
    progress: list[float] = []
    result = mix_to_ogg(c + b + a, tmp_path / "m.ogg", tmp_path / "m.frames", progress=progress.append)
    assert result.origin == T0 and result.speaker_ids == ("a", "b", "c")
    assert result.duration == timedelta(seconds=3)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    samples = decode_ogg((tmp_path / "m.ogg").read_bytes())
    assert len(samples) == 3 * RATE

    overlap = samples[int(0.6 * RATE) : int(0.9 * RATE)]
    assert band_energy(overlap, 440) > 0.3 * band_energy(overlap, 1000) > 0
    gap = samples[int(1.6 * RATE) : int(2.4 * RATE)]
    assert abs(gap).max() < 0.01
    assert abs(samples[int(2.6 * RATE) : int(2.9 * RATE)]).max() > 0.2


def test_the_frame_index_seeks_to_any_20_ms_frame(tmp_path):
    mix_to_ogg(frames("a", tone_packets(440, 1.0), 0.0), tmp_path / "m.ogg", tmp_path / "m.frames")
    with open(tmp_path / "m.frames", "rb") as f:
        index = FrameIndex(f)
        assert len(index) >= 50
        numbered = list(index.packets(25))
    assert numbered[0][0] == 25 and all(len(p) > 0 for _, p in numbered)


def test_no_frames_is_refused(tmp_path):
    with pytest.raises(ValueError):
        mix_to_ogg([], tmp_path / "m.ogg", tmp_path / "m.frames")


def test_the_local_blob_store_puts_atomically_and_refuses_odd_keys(tmp_path):
    store = LocalDirectoryBlobStore(tmp_path / "blobs")
    assert store.put_bytes("s.ogg", b"abc") == 3 and store.size("s.ogg") == 3
    with store.open("s.ogg") as f:
        assert f.read() == b"abc"
    assert not [p for p in (tmp_path / "blobs").iterdir() if p.name.endswith(".part")]
    store.delete("s.ogg")
    store.delete("s.ogg")  # idempotent
    assert store.size("s.ogg") is None
    for bad in ("../etc/passwd", "", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            store.size(bad)


def test_capture_jitter_is_absorbed_and_a_lost_frame_stays_a_gap(tmp_path):
    import random

    random.seed(7)
    packets = tone_packets(1000, 1.0)
    jittered = [
        SpeakerFrame("a", T0 + timedelta(milliseconds=20 * i + random.uniform(-8, 8)), i, p)
        for i, p in enumerate(packets)
        if i != 30  # frame 30 was lost before the relay
    ]
    mix_to_ogg(jittered, tmp_path / "m.ogg", tmp_path / "m.frames")
    samples = decode_ogg((tmp_path / "m.ogg").read_bytes())
    clean = samples[int(0.1 * RATE) : int(0.55 * RATE)]
    assert band_energy(clean, 1000) > 1000 * (band_energy(clean, 700) + band_energy(clean, 1300))
    gap = samples[int(0.605 * RATE) : int(0.615 * RATE)]
    assert abs(gap).max() < 0.05 < abs(samples[int(0.65 * RATE) : int(0.7 * RATE)]).max()


def test_scratch_left_by_a_dead_worker_is_swept_and_fresh_scratch_is_kept(tmp_path):
    import os

    store = LocalDirectoryBlobStore(tmp_path)
    old, fresh = store.scratch("a.ogg"), store.scratch("b.ogg")
    old.write_bytes(b"half")
    fresh.write_bytes(b"working")
    os.utime(old, (0, 0))
    assert store.sweep_scratch(timedelta(hours=1)) == 1
    assert not old.exists() and fresh.exists()


def test_the_frame_index_reads_across_blocks(tmp_path):
    mix_to_ogg(frames("a", tone_packets(440, 6.0), 0.0), tmp_path / "m.ogg", tmp_path / "m.frames")
    with open(tmp_path / "m.frames", "rb") as f:
        index = FrameIndex(f)
        everything = list(index.packets(0))
        assert [n for n, _ in everything] == list(range(len(index))) and len(index) > FrameIndex.BLOCK
        assert next(index.packets(FrameIndex.BLOCK + 4)) == everything[FrameIndex.BLOCK + 4]
