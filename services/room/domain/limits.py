"""The room's limits: Twitter Spaces' numbers, configurable per deployment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# What a Space may be about, unless a deployment lists its own (PODIUM_ROOM_SPACE_TOPICS).
DEFAULT_TOPICS = frozenset(
    {
        "arts", "business", "comedy", "crypto", "education", "entertainment", "fashion", "food",
        "gaming", "health", "music", "news", "politics", "religion", "science", "social",
        "sports", "technology", "travel", "wellness",
    }
)  # fmt: skip


@dataclass(frozen=True)
class RoomLimits:
    max_co_hosts: int = 2
    max_speakers: int = 10  # besides the host and co-hosts: 13 voices in all
    min_title: int = 1
    max_title: int = 70
    max_description: int = 500
    max_invitees_per_call: int = 100
    max_user_id: int = 128
    max_speak_requests: int = 1000
    abandoned_grace: timedelta = timedelta(minutes=5)
    # When the host and co-hosts left in a mass time-out (presence's brake), not on evidence about
    # them: they may be coming back from a platform fault. Longer, yet finite, so a Space that
    # nobody will come back to does not stay live forever.
    abandoned_grace_without_evidence: timedelta = timedelta(hours=1)
    max_invite_link_ttl: timedelta = timedelta(days=7)
    topics: frozenset[str] = DEFAULT_TOPICS  # the ones a Space may name
    max_topics: int = 3
    reminder_lead: timedelta = timedelta(minutes=15)  # "starting soon" this long before the start
    start_window: timedelta = timedelta(hours=2)  # a scheduled Space not started by then expires
    reminder_batch: int = 1000  # subscribers one SpaceReminder names
    # Listener shards a Space may grow to (ADR 0012); a power of two, as each growth doubles.
    max_listener_shards: int = 256
