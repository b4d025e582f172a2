"""Presence over real gRPC and the broker, with the room service reacting to timeouts."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from libs.config.settings import PodiumSettings
from libs.events.envelope import decode
from libs.events.kafka import make_reader, partitions_of
from libs.events.topics import PRESENCE_EVENTS, PRESENCE_HEARTBEATS
from libs.streams.faust_app import partition_of
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_service_pb2 as ps
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_types_pb2 as rt
from services.presence.domain.evidence import Evidence, forget_gateway, judge, observe
from services.presence.domain.space_presence import PresenceRules, beat, counts, drop_gateway, empty
from tests.integration.clients import ModerationClient, PresenceClient, PresenceGateway, RoomClient
from tests.integration.conftest import eventually
from tests.support.auth import gateway_token
from tests.support.room_log import announce_spaces, end_announced_spaces

pytestmark = pytest.mark.integration

FAST = {
    "PODIUM_PRESENCE_TIMEOUT_SECONDS": "1.5",
    "PODIUM_PRESENCE_RECONNECT_GRACE_SECONDS": "30",
    "PODIUM_PRESENCE_TICK_SECONDS": "0.2",
    "PODIUM_PRESENCE_FORGET_ENDED_AFTER_SECONDS": "1",
}


@pytest.fixture(scope="module")
async def presence(service_factory):
    service = await service_factory("presence", env=FAST)
    yield service
    await service.stop()


def _entries(users, space_id):
    return [pt.PresenceEntry(user_id=u, space_id=space_id) for u in users]


async def _present(client: PresenceClient, space_id: str) -> set[str]:
    reply = await client.GetSpacePresence(space_id=space_id, page_size=1000)
    return {u.user_id for u in reply.users}


async def _until(predicate, timeout=15.0):
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def _presence_events(broker, space_id: str, count: int, timeout=15.0):
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=broker.bootstrap), "test-presence-events")
    await reader.start()
    found = []
    try:
        parts = await partitions_of(reader, PRESENCE_EVENTS.name)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        async with asyncio.timeout(timeout):
            while len(found) < count:
                for records in (await reader.getmany(timeout_ms=200)).values():
                    for record in records:
                        envelope, payload = decode(record.value)
                        if envelope.space_id == space_id:
                            found.append((envelope, payload))
    finally:
        await reader.stop()
    return found


async def test_a_dead_gateway_drops_exactly_its_users(presence, broker):
    gateway = PresenceGateway(presence.channel, "gateway-service")
    space = "presence-space-1"
    await announce_spaces(broker.bootstrap, [space], presence=presence.channel)
    await gateway.ReportPresence(gateway_id="gw-a", entries=_entries(["a1", "a2"], space))
    await gateway.ReportPresence(gateway_id="gw-b", entries=_entries(["b1"], space))
    await _until(lambda: _eq(_present(gateway, space), {"a1", "a2", "b1"}))
    # gw-b keeps beating while gw-a dies
    await gateway.GatewayDisconnected(gateway_id="gw-a")
    await gateway.ReportPresence(gateway_id="gw-b", entries=_entries(["b1"], space))
    await _until(lambda: _eq(_present(gateway, space), {"b1"}))
    events = await _presence_events(broker, space, 5)
    timed_out = [p for _, p in events if isinstance(p, pev.ParticipantTimedOut)]
    assert sorted(p.user_id for p in timed_out) == ["a1", "a2"]
    assert {p.cause for p in timed_out} == {pev.TIMEOUT_CAUSE_GATEWAY_DISCONNECTED}
    assert [e.stream_version for e, _ in events] == list(range(1, 6))


async def _eq(awaitable, expected):
    return await awaitable == expected


async def test_missed_heartbeats_time_out_and_a_quick_return_is_a_reconnect(presence, broker):
    gateway = PresenceGateway(presence.channel, "gateway-service")
    space = "presence-space-2"
    await announce_spaces(broker.bootstrap, [space], presence=presence.channel)
    await gateway.ReportPresence(gateway_id="gw", entries=_entries(["flaky", "steady"], space))

    async def flaky_gone() -> bool:  # "steady" keeps beating; "flaky" has stopped
        await asyncio.sleep(0.2)
        await gateway.ReportPresence(gateway_id="gw", entries=_entries(["steady"], space))
        return await _present(gateway, space) == {"steady"}

    await _until(flaky_gone)
    await gateway.ReportPresence(gateway_id="gw", entries=_entries(["flaky", "steady"], space))
    events = await _presence_events(broker, space, 4)
    kinds = [(type(p).__name__, p.user_id, getattr(p, "kind", 0)) for _, p in events]
    assert kinds[2] == ("ParticipantTimedOut", "flaky", 0)
    assert kinds[3] == ("ParticipantConnected", "flaky", pev.CONNECT_KIND_RECONNECT)
    counts = (await gateway.GetSpacePresence(space_id=space)).counts
    assert (counts.current_listeners, counts.peak_listeners, counts.unique_listeners) == (2, 2, 2)
    where = await gateway.GetUserPresence(user_id="steady")
    assert where.present and where.space_id == space
    padded = await gateway.GetUserPresence(user_id=" steady ")  # ids are taken stripped, as everywhere
    assert padded.present and padded.space_id == space and padded.user.user_id == "steady"


async def test_a_timeout_becomes_a_leave_in_the_room(presence, room):
    host, listener = RoomClient(room.channel, "presence-host"), RoomClient(room.channel, "drifter")
    space_id = (await host.CreateSpace(title="presence")).space.space_id
    await host.StartSpace(space_id=space_id)
    await listener.JoinSpace(space_id=space_id)
    gateway = PresenceGateway(presence.channel, "gateway-service")
    await gateway.ReportPresence(gateway_id="gw-room", entries=_entries(["drifter"], space_id))

    async def gone_from_room():
        # The gateway goes on reporting, without the drifter: evidence that they are gone.
        await gateway.ReportPresence(gateway_id="gw-room", entries=[])
        await asyncio.sleep(0.2)
        people = await host.ListParticipants(space_id=space_id)
        return "drifter" not in {p.user_id for p in people.participants}

    await _until(gone_from_room, timeout=20)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_counts_survive_a_restart_and_equal_a_replay_of_the_log(
    service_factory, private_broker, private_database_url, stop
):
    # A broker of its own: a second presence process on the shared broker would join the shared
    # consumer group and take half the partitions (queries answer from local partitions only).
    service = await service_factory(
        "presence",
        broker=private_broker,
        database=private_database_url,
        env=FAST | {"PODIUM_PRESENCE_TIMEOUT_SECONDS": "60"},
    )
    gateway = PresenceGateway(service.channel, "gateway-service")
    space = f"presence-space-restart-{stop}"
    await announce_spaces(private_broker.bootstrap, [space], presence=service.channel)
    await gateway.ReportPresence(gateway_id="gw", entries=_entries([f"u{i}" for i in range(5)], space))
    await gateway.ReportPresence(gateway_id="gw", entries=_entries([f"u{i}" for i in range(3)], space))
    await gateway.GatewayDisconnected(gateway_id="gw")
    await gateway.ReportPresence(gateway_id="gw2", entries=_entries(["u0", "late"], space))
    seen = []

    async def settled():
        counts = (await gateway.GetSpacePresence(space_id=space)).counts
        seen.append((counts.current_listeners, counts.peak_listeners, counts.unique_listeners))
        return seen[-1] == (2, 5, 6)

    async def until_settled(when: str):
        seen.clear()
        try:
            await _until(settled, timeout=60)
        except TimeoutError:
            pytest.fail(f"counts {when} never settled; last seen {seen[-3:]} of {len(seen)} polls")

    await until_settled("before the restart")
    # SIGTERM: faust flushes the changelog, then commits its offsets. SIGKILL: whatever was not
    # committed is processed again from the heartbeat log, and what was committed has its table
    # writes on the broker (libs/streams/faust_app.py: faust's own flush could return with them
    # still buffered, which once settled these counts at (0, 6, 6)). Either way the table comes
    # back from its changelog with nothing lost.
    if stop == "sigterm":
        await service.terminate(grace=60)
        assert service.process.process.returncode == 0, service.process.output_tail()
    else:
        service.kill()
    await service.restart()
    await until_settled("after the restart")
    await service.stop()
    # And the counts equal a full replay of the heartbeat log through the same rules.
    replayed = await _replay_heartbeats(
        private_broker.bootstrap, space, PresenceRules(timeout_seconds=60, reconnect_grace_seconds=30)
    )
    assert counts(replayed) == (2, 5, 6)


async def test_every_table_value_comes_back_after_a_restart_from_multi_record_batches(
    service_factory, private_broker, private_database_url
):
    """300 Spaces joined in one call: their changelog writes leave in batches of many records, and
    the embedded broker reports such a partition's end short (at the last batch's base offset + 1).
    A restarted presence must still recover every Space (libs/streams/faust_app.py reads on to the
    real end)."""
    service = await service_factory(
        "presence",
        broker=private_broker,
        database=private_database_url,
        env=FAST | {"PODIUM_PRESENCE_TIMEOUT_SECONDS": "60"},
    )
    gateway = PresenceGateway(service.channel, "gateway-service")
    spaces = [f"presence-batched-{i}" for i in range(300)]
    await announce_spaces(private_broker.bootstrap, spaces, presence=service.channel)
    entries = [pt.PresenceEntry(user_id=f"user-{i}", space_id=space) for i, space in enumerate(spaces)]
    await gateway.ReportPresence(gateway_id="gw", entries=entries)

    async def all_present() -> bool:
        for space in spaces[::-1]:
            if (await gateway.GetSpacePresence(space_id=space)).present_count != 1:
                return False
        return True

    await _until(all_present, timeout=60)
    await service.terminate(grace=60)
    await service.restart()  # SERVING only once the table has recovered
    missing = [s for s in spaces if (await gateway.GetSpacePresence(space_id=s)).present_count != 1]
    assert not missing, f"{len(missing)} of {len(spaces)} Spaces not recovered, e.g. {missing[:3]}"
    await service.stop()


async def _replay_heartbeats(bootstrap: str, space_id: str, rules: PresenceRules) -> dict:
    """Folds the Space's partition of the heartbeat topic, in order, with the domain's rules (as the
    stream processor applies them, without its lag check: a replay is behind by design)."""
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)
    reader = make_reader(settings, "test-presence-replay")
    await reader.start()
    try:
        parts = await partitions_of(reader, PRESENCE_HEARTBEATS.name)
        tp = next(p for p in parts if p.partition == partition_of(space_id, len(parts)))
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        state, evidence, position = empty(space_id), Evidence(), 0
        while position < end:
            for record in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                position = record.offset + 1
                signal = pt.HeartbeatBatch.FromString(record.value)
                now = record.timestamp / 1000
                if signal.tick:
                    judge({space_id: state}, evidence, rules)
                    continue
                observe(evidence, signal.gateway_id, now, rules)
                if signal.gateway_disconnected:
                    forget_gateway(evidence, signal.gateway_id)
                    drop_gateway(state, signal.gateway_id, now)
                elif signal.space_id == space_id:
                    beat(state, signal.gateway_id, list(signal.user_ids), now, rules)
        return state
    finally:
        await reader.stop()


async def test_an_ended_space_leaves_the_table_after_the_configured_time(presence, broker):
    gateway = PresenceGateway(presence.channel, "gateway-service")
    space = "presence-space-ended"
    await announce_spaces(broker.bootstrap, [space], presence=presence.channel)
    await gateway.ReportPresence(gateway_id="gw", entries=_entries(["e1", "e2"], space))

    async def figures():
        counts = (await gateway.GetSpacePresence(space_id=space)).counts
        return counts.current_listeners, counts.peak_listeners, counts.unique_listeners

    await _until(lambda: _eq(figures(), (2, 2, 2)))
    await end_announced_spaces(broker.bootstrap, [space])
    # Everyone leaves at the end; the peak stays while the value is kept, then the value goes
    # (a tombstone in the changelog), so nothing of the Space is left to recover.
    await _until(lambda: _eq(figures(), (0, 0, 0)))
    # A heartbeat for the ended Space is refused, and brings nothing back.
    reply = await gateway.ReportPresence(gateway_id="gw", entries=_entries(["e1"], space))
    assert [r.reason for r in reply.rejected] == ["SPACE_ENDED"]
    assert await figures() == (0, 0, 0)


async def test_bad_reports_are_rejected(presence):
    gateway = PresenceGateway(presence.channel, "gateway-service")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        as_gw = PresenceClient(presence.channel, "gw", token=gateway_token("gw"))
        await as_gw.ReportPresence(gateway_id="", entries=_entries(["x"], "s"))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await gateway.ReportPresence(gateway_id="gw", entries=[pt.PresenceEntry(user_id="x")])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_watch_space_sends_the_snapshot_then_the_changes_in_order(presence, room, moderation):
    host = RoomClient(room.channel, "watch-host")
    space_id = (await host.CreateSpace(title="watched", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    await _until(lambda: _board_has(presence, space_id, "watch-host"))
    watcher = PresenceGateway(presence.channel, "gateway-service")
    stream = watcher.stub.WatchSpace(ps.WatchSpaceRequest(space_id=space_id), metadata=watcher._md())
    updates = stream.__aiter__()

    async def next_update():
        return await asyncio.wait_for(updates.__anext__(), 15)

    first = await next_update()
    assert first.WhichOneof("update") == "snapshot"
    assert [(m.user_id, m.role) for m in first.snapshot.members] == [("watch-host", rt.ROLE_HOST)]
    space = first.snapshot.space
    assert (space.space_id, space.title, space.host_user_id) == (space_id, "watched", "watch-host")
    assert space.state == rt.SPACE_STATE_LIVE and space.recording and space.HasField("started_at")

    ann = RoomClient(room.channel, "watch-ann")
    seen = []

    async def read_until(done) -> None:
        while not seen or not done(seen[-1]):
            update = await next_update()
            assert update.WhichOneof("update") == "change"
            member = update.change.member
            assert member.user_id == "watch-ann"
            seen.append((update.change.kind, member.role, member.hand_raised, member.muted))

    listener, speaker = rt.ROLE_LISTENER, rt.ROLE_SPEAKER
    joined, updated, left = (
        pt.MEMBER_CHANGE_KIND_JOINED,
        pt.MEMBER_CHANGE_KIND_UPDATED,
        pt.MEMBER_CHANGE_KIND_LEFT,
    )
    await ann.JoinSpace(space_id=space_id)
    await ann.RequestToSpeak(space_id=space_id)
    await host.ApproveSpeakRequest(space_id=space_id, user_id="watch-ann")
    await read_until(lambda change: change[1] == speaker)
    await eventually(
        lambda: ModerationClient(moderation.channel, "watch-host").MuteParticipant(
            space_id=space_id, user_id="watch-ann"
        )
    )
    await read_until(lambda change: change[3])  # muted (moderation's topic, not the room's)
    await ann.LeaveSpace(space_id=space_id)
    await read_until(lambda change: change[0] == left)

    # The Space's own changes, then the host leaving as it ends.
    await host.UpdateSpace(space_id=space_id, update_mask=FieldMask(paths=["title"]), title="renamed")
    await host.UpdateSpace(
        space_id=space_id, update_mask=FieldMask(paths=["recording_enabled"]), recording_enabled=False
    )
    await host.EndSpace(space_id=space_id)
    told = []
    while not told or told[-1] != ("member", left, "watch-host"):
        update = await next_update()
        if update.WhichOneof("update") == "space_change":
            change = update.space_change
            kind = pt.SpaceChangeKind.Name(change.kind).removeprefix("SPACE_CHANGE_KIND_")
            details = change.space
            told.append((kind, list(change.changed_fields), details.title, details.state, details.recording))
        else:
            told.append(("member", update.change.kind, update.change.member.user_id))
    stream.cancel()
    live, ended = rt.SPACE_STATE_LIVE, rt.SPACE_STATE_ENDED
    assert told == [
        ("UPDATED", ["title"], "renamed", live, True),
        ("UPDATED", ["recording_enabled"], "renamed", live, False),
        ("RECORDING_STOPPED", [], "renamed", live, False),
        ("ENDED", [], "renamed", ended, False),
        ("member", left, "watch-host"),
    ]
    assert seen[0] == (joined, listener, False, False)
    hand, promoted, muted = (
        (updated, listener, True, False),
        (updated, speaker, False, False),
        (updated, speaker, False, True),
    )
    assert seen.index(hand) < seen.index(promoted) < seen.index(muted) < len(seen) - 1


async def _board_has(presence, space_id: str, user_id: str) -> bool:
    """Until the board has seen the host join, a snapshot could be empty."""
    client = PresenceGateway(presence.channel, "gateway-service")
    stream = client.stub.WatchSpace(ps.WatchSpaceRequest(space_id=space_id), metadata=client._md())
    reply = await stream.read()
    stream.cancel()
    return user_id in {m.user_id for m in reply.snapshot.members}
