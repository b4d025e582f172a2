"""The replay catalog: which Spaces are recorded (consent settles at the start), and when to finalize."""

from __future__ import annotations

from datetime import timedelta

from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from services.replay.projections.replay_catalog import ReplayCatalog
from tests.unit.replay.test_retention import T, consumed


async def feed(catalog: ReplayCatalog, space_id: str, *events) -> None:
    for version, (event, seconds) in enumerate(events, 1):
        await catalog.apply(consumed(event, T + timedelta(seconds=seconds), version, space_id))


async def test_recording_switched_off_before_the_start_means_no_replay_and_no_job():
    ended: list[str] = []

    async def on_end(space_id, _at):
        ended.append(space_id)

    catalog = ReplayCatalog(on_recorded_end=on_end)
    await feed(
        catalog,
        "off",
        (rev.SpaceCreated(space_id="off", host_user_id="h", recording_enabled=True), 0),
        (rev.SpaceUpdated(space_id="off", changed_fields=["recording_enabled"], recording_enabled=False), 1),
        (rev.SpaceStarted(space_id="off"), 2),
        (rev.SpaceEnded(space_id="off"), 3),
    )
    await feed(
        catalog,
        "on",
        (rev.SpaceCreated(space_id="on", host_user_id="h", recording_enabled=True), 0),
        (rev.SpaceStarted(space_id="on"), 1),
        (rev.SpaceUpdated(space_id="on", changed_fields=["recording_enabled"], recording_enabled=False), 2),
        (rev.SpaceEnded(space_id="on"), 5),
    )
    assert ended == ["on"]  # switching it off once live does not unrecord what was recorded
    assert not catalog.get("off").recorded and catalog.get("on").recorded
    assert [s.space_id for s in catalog.by_host("h")] == ["on"]


async def test_a_hosts_replays_are_newest_first_and_deleted_ones_drop_out():
    catalog = ReplayCatalog(on_deleted=_nothing)
    for n, space_id in enumerate(("a", "b", "c")):
        await feed(
            catalog,
            space_id,
            (rev.SpaceCreated(space_id=space_id, host_user_id="h", recording_enabled=True), 0),
            (rev.SpaceStarted(space_id=space_id), 1),
            (rev.SpaceEnded(space_id=space_id), 10 + n),
        )
    await feed(catalog, "b", (rpe.ReplayDeleted(space_id="b", reason=rpe.DELETION_REASON_HOST_DELETED), 20))
    assert [s.space_id for s in catalog.by_host("h")] == ["c", "a"]
    assert catalog.by_host("someone-else") == []


async def _nothing(space_id: str) -> None:
    return None
