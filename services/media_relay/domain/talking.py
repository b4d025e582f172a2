"""Active-speaker detection from audio levels: pure, no I/O, time passed in.

A speaker starts talking when `attack_frames` consecutive frames are at or
above `threshold_dbov`, and stops after `hangover_ms` without such a frame. A
start needs at least `min_silence_ms` since the last stop, so a speaker
produces at most about 1000 / (hangover_ms + min_silence_ms) start/stop
pairs per second, however choppy their audio.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartedTalking:
    at_ms: int


@dataclass(frozen=True)
class StoppedTalking:
    at_ms: int
    talked_ms: int


Transition = StartedTalking | StoppedTalking


@dataclass(frozen=True)
class TalkingPolicy:
    threshold_dbov: int = -45
    attack_frames: int = 2
    hangover_ms: int = 400
    min_silence_ms: int = 100


class TalkingDetector:
    """One speaker's talking state. `observe` per frame, `tick` when time passes without frames."""

    def __init__(self, policy: TalkingPolicy = TalkingPolicy()):
        self.policy = policy
        self.talking = False
        self._voiced_run = 0
        self._since_ms = 0
        self._last_voice_ms = 0
        self._stopped_at_ms: int | None = None

    def observe(self, level_dbov: int, now_ms: int) -> Transition | None:
        p = self.policy
        if level_dbov >= p.threshold_dbov:
            self._voiced_run += 1
            self._last_voice_ms = now_ms
            if (
                not self.talking
                and self._voiced_run >= p.attack_frames
                and (self._stopped_at_ms is None or now_ms - self._stopped_at_ms >= p.min_silence_ms)
            ):
                self.talking = True
                self._since_ms = now_ms
                return StartedTalking(now_ms)
            return None
        self._voiced_run = 0
        return self.tick(now_ms)

    def tick(self, now_ms: int) -> Transition | None:
        if self.talking and now_ms - self._last_voice_ms >= self.policy.hangover_ms:
            return self._stop(now_ms)
        return None

    def finish(self, now_ms: int) -> Transition | None:
        """The speaker's stream ended (or they may no longer speak): stop at once if talking."""
        self._voiced_run = 0
        return self._stop(now_ms) if self.talking else None

    def _stop(self, now_ms: int) -> StoppedTalking:
        self.talking = False
        self._stopped_at_ms = now_ms
        return StoppedTalking(now_ms, max(0, now_ms - self._since_ms))
