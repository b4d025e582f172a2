"""The pure parts of the lost-log recovery: which apps, which topics, what is said."""

from __future__ import annotations

import pytest

from libs.devstack.stack import Stack
from libs.events.topics import (
    ANALYTICS_APP,
    ANALYTICS_TABLES,
    EVERY_TOPIC,
    MODERATION_REPORTS_APP,
    PRESENCE_APP,
)
from libs.recovery.readers import FAUST_APPS, ReaderReset, faust_apps
from libs.recovery.reseed import schema_of


def test_every_faust_app_of_the_catalogue_is_reset_and_another_analytics_id_joins_them():
    assert set(FAUST_APPS) == {PRESENCE_APP, ANALYTICS_APP, MODERATION_REPORTS_APP}
    apps = faust_apps(("analytics-after-faults",))
    assert apps["analytics-after-faults"] == ANALYTICS_TABLES
    assert set(apps) - set(FAUST_APPS) == {"analytics-after-faults"}


def test_a_service_name_is_its_schema_and_nothing_else_passes():
    assert schema_of("media-relay") == "media_relay"
    assert schema_of("room") == "room"
    with pytest.raises(ValueError):
        schema_of("room; DROP TABLE room.events")


def test_a_reset_says_what_it_did_one_line_each():
    done = ReaderReset(
        groups={"podium-presence": 6}, changelogs=["c1"], positions={"replay.recording_positions": 2}
    )
    assert done.lines() == [
        "consumer group podium-presence: 6 partitions back to the earliest offset",
        "changelog c1: emptied",
        "replay.recording_positions: 2 stored positions forgotten",
    ]


def test_the_dev_stack_makes_every_topic_and_a_configured_analytics_apps_changelogs(monkeypatch):
    monkeypatch.delenv("PODIUM_ANALYTICS_APP_ID", raising=False)
    assert Stack().topics() == EVERY_TOPIC
    monkeypatch.setenv("PODIUM_ANALYTICS_APP_ID", "my-analytics")
    extra = [t.name for t in Stack().topics()[len(EVERY_TOPIC) :]]
    assert extra == ["my-analytics-space-members-changelog", "my-analytics-space-stats-changelog"]
    monkeypatch.setenv("PODIUM_ANALYTICS_APP_ID", ANALYTICS_APP)  # the default id: nothing more
    assert Stack().topics() == EVERY_TOPIC
