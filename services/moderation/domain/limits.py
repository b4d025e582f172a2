"""Moderation's tunables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ModerationLimits:
    auto_mute_reports: int = 3  # distinct reporters of one speaker...
    auto_mute_window: timedelta = timedelta(minutes=2)  # ...within this long mute them pending review
    max_report_text: int = 1000
    max_reason_text: int = 500
