"""Moderation state: one value per Space stream, one per host's block list."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ReportRecord:
    report_id: str
    reporter_user_id: str
    target_user_id: str  # "" for a report about the Space
    reason: int
    text: str
    reported_at: datetime
    resolution: int = 0  # 0 while open
    resolver_user_id: str = ""
    resolved_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.resolution == 0


@dataclass(frozen=True)
class SpaceModeration:
    space_id: str = ""
    mutes: dict[str, int] = field(default_factory=dict)  # user -> MuteKind
    removed: frozenset[str] = frozenset()
    reports: dict[str, ReportRecord] = field(default_factory=dict)  # in arrival order
    auto_mute_causes: frozenset[str] = frozenset()  # report ids that already caused an automatic mute
    version: int = 0


@dataclass(frozen=True)
class BlockList:
    host_user_id: str = ""
    blocked: frozenset[str] = frozenset()
    version: int = 0


SPACE_INITIAL = SpaceModeration()
BLOCKS_INITIAL = BlockList()
