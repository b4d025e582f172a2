"""Active-speaker detection: debounced starts and stops from audio levels."""

from __future__ import annotations

from services.media_relay.domain.talking import StartedTalking, StoppedTalking, TalkingDetector, TalkingPolicy

LOUD, QUIET = -10, -127


def run(levels, policy=TalkingPolicy(), step_ms=20):
    detector = TalkingDetector(policy)
    out = []
    for i, level in enumerate(levels):
        change = detector.observe(level, i * step_ms)
        if change is not None:
            out.append(change)
    return detector, out


def test_talking_starts_after_the_attack_and_stops_after_the_hangover():
    _, changes = run([LOUD] * 50 + [QUIET] * 30)
    assert changes == [StartedTalking(20), StoppedTalking(1380, 1360)]  # last loud at 980 + 400


def test_a_single_loud_frame_is_not_talking():
    _, changes = run([QUIET, LOUD, QUIET, QUIET, LOUD, QUIET] * 20)
    assert changes == []


def test_short_pauses_inside_speech_do_not_stop_it():
    pattern = ([LOUD] * 10 + [QUIET] * 10) * 10  # 200 ms pauses, shorter than the 400 ms hangover
    _, changes = run(pattern)
    assert [type(c) for c in changes] == [StartedTalking]


def test_choppy_audio_produces_at_most_a_few_transitions_per_second():
    pattern = ([LOUD] * 2 + [QUIET] * 25) * 40  # bursts every 540 ms for ~21.6 s
    _, changes = run(pattern)
    seconds = len(pattern) * 0.02
    assert len(changes) / seconds <= 4
    starts = [c.at_ms for c in changes if isinstance(c, StartedTalking)]
    stops = [c.at_ms for c in changes if isinstance(c, StoppedTalking)]
    assert all(b - a >= 400 for a, b in zip(starts, stops, strict=False))


def test_tick_and_finish_stop_a_speaker_whose_frames_stopped_coming():
    detector, _ = run([LOUD] * 5)
    assert detector.tick(200) is None
    assert detector.tick(480) == StoppedTalking(480, 460)
    detector, _ = run([LOUD] * 5)
    assert detector.finish(100) == StoppedTalking(100, 80)
    assert detector.finish(120) is None
