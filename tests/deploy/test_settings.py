"""Each service's settings class accepts what its manifest sets; typos and bad values fail."""

from __future__ import annotations

from pathlib import Path

from deploy.check.settings import check_settings
from tests.deploy.conftest import edit, render


def test_the_overlays_give_every_service_valid_settings(renders):
    assert check_settings(renders) == []


def test_a_misspelt_variable_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/room.yaml",
        'PODIUM_ROOM_BIND_HOST: "0.0.0.0"',
        'PODIUM_ROOM_BIND_HOTS: "0.0.0.0"',
    )
    problems = check_settings([render(repo, "overlays/dev")])
    assert any("room: PODIUM_ROOM_BIND_HOTS is read by no setting of RoomSettings" in p for p in problems), (
        problems
    )


def test_a_value_the_service_rejects_fails(repo: Path):
    edit(repo / "deploy/k8s/base/common.yaml", "PODIUM_EVENT_LOOP: uvloop", "PODIUM_EVENT_LOOP: trio")
    problems = check_settings([render(repo, "overlays/prod")])
    assert any("RoomSettings.event_loop" in p for p in problems), problems


def test_a_relay_ring_that_does_not_parse_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/room.yaml",
        'PODIUM_ROOM_MEDIA_RELAYS: "media-relay-0=media-relay-0.media-relay-headless:50054"',
        'PODIUM_ROOM_MEDIA_RELAYS: "media-relay-0"',
    )
    problems = check_settings([render(repo, "overlays/dev")])
    assert any("RoomSettings.room_media_relays" in p for p in problems), problems
