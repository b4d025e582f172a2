"""Which histories there are, and the head each release's code expects.

A history is one service's schema (named as the schema). `HEADS` is what the
services check at start without loading Alembic (which costs a service start
most of half a second); tests/unit/libs/test_migration_histories.py fails when
it disagrees with the revision files, naming the head to write here.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

#: history (= the service's schema) -> the head revision this code needs.
HEADS: dict[str, str] = {
    "room": "room_0002",
    "presence": "presence_0003",
    "moderation": "moderation_0002",
    "media_relay": "media_relay_0002",
    "replay": "replay_0002",
    "webhooks": "webhooks_0002",
}

HISTORIES: tuple[str, ...] = tuple(HEADS)


def versions_dir(history: str) -> Path:
    if history not in HEADS:
        raise ValueError(f"no migration history {history!r}: one of {', '.join(HISTORIES)}")
    return HERE / "versions" / history
