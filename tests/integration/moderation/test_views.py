"""Moderation's durable views against real PostgreSQL: what the rows say is what the fold says.

The room roles are applied in batches of any size as the durable runner would (each batch in one
transaction, `committed` after it), with a writer whose cache can hold one Space and a writer that
restarts halfway (its cache empty, loaded from the rows). After each batch the writer, from
memory, and a follower, from the rows, answer every user's role as the room's own `evolve` does.
The report index answers ListReports' filters, order and pages with SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from libs.domain.streams import is_space_stream
from libs.events.envelope import Causation, wrap
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.grpckit.pagination import parse_page
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as ev
from services.moderation.projections.report_index import ReportIndex
from services.moderation.projections.room_roles import RoomRoles
from tests.support.schemas import emptied
from tests.support.sharded_log import on_streams
from tests.unit.membership.test_one_fold import history, steps
from tests.unit.room.given import HOST, SPACE
from tests.unit.room.test_invariants import USERS, limits, started

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(private_database_url):
    pool = await asyncpg.create_pool(private_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _schema(pool, view) -> str:
    """The moderation schema of a migrated database of the test's own, with `view`'s tables empty."""
    return await emptied(pool, "moderation", view.tables)


def _event(
    payload,
    version: int,
    at: datetime,
    topic: str = ROOM_EVENTS.name,
    space_id: str = SPACE,
    stream_id: str = "",
    offset: int = 0,
):
    envelope = wrap(
        payload,
        producer="test",
        stream_id=stream_id or f"space-{space_id}",
        version=version,
        space_id=space_id,
        occurred_at=at,
        causation=Causation("someone", "c", "c"),
    )
    return ConsumedEvent(envelope, payload, topic, 0, offset or version)


async def _apply(pool, view, batch) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await view.apply(conn, batch)
    if committed := getattr(view, "committed", None):
        committed(batch)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, limits, started, st.lists(st.integers(1, 12), min_size=1, max_size=40))
async def test_the_rows_and_the_cache_answer_every_role_as_the_room_does(
    pool, sequence, room_limits, start, sizes
):
    log = [m for m in history(sequence, room_limits, start) if m.topic == ROOM_EVENTS.name]
    events = [_event(m.event, version, m.at) for version, m in enumerate(log, start=1)]
    schema = await _schema(pool, RoomRoles)
    writer, follower = RoomRoles(pool, schema, cache_spaces=1), RoomRoles(pool, schema)
    done, turn = 0, 0
    while done < len(events):
        size = sizes[turn % len(sizes)]
        turn += 1
        if turn == 3:
            writer = RoomRoles(pool, schema, cache_spaces=1)  # a restart: nothing in memory
        batch = events[done : done + size]
        await _apply(pool, writer, batch)
        done += len(batch)
        room = log[done - 1].room
        for user in (*USERS, HOST):
            expected = (room.role_of(user), room.role_of(user), room.host_user_id)
            for view in (writer, follower):
                roles = await view.roles(SPACE, user, user)
                assert (roles.actor, roles.target, roles.host_user_id) == expected, (user, view)
        assert follower.cached(SPACE) is None  # it applies nothing, so it answers from the rows
        assert (writer.cached(SPACE) is None) == room.is_over  # an ended Space leaves memory
        if not room.is_over:  # and the rest of the roster survives a load from the rows
            roster = writer.cached(SPACE).roster
            assert (roster.co_hosts, roster.speakers) == (room.co_hosts, room.speakers)
            assert roster.present == len(room.participants)
    members = await pool.fetchval(f"SELECT count(*) FROM {schema}.room_members_v1")
    if log[-1].room.is_over:
        assert members == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, limits, started, st.sampled_from([2, 4]), st.lists(st.integers(1, 12), min_size=1, max_size=20))
async def test_listeners_on_shard_streams_hold_the_roles_the_room_gives_them(
    pool, sequence, room_limits, start, shards, sizes
):
    """ADR 0012: joins and leaves on the users' listener shards, everything else on the Space's own
    stream, in the room's order. The roster row keeps the own stream's version, and a writer that
    restarts (loading the Space from the rows, not from a v1 of its own stream) answers as the room."""
    created, *rest = [m for m in history(sequence, room_limits, start) if m.topic == ROOM_EVENTS.name]
    grown = ev.ListenerShardsGrown(space_id=SPACE, shards=shards)
    items = [(created.event, created.at), (grown, created.at), *((m.event, m.at) for m in rest)]
    rooms = [created.room, created.room, *(m.room for m in rest)]
    laid_out = on_streams(SPACE, items, shards)
    assume(any(not is_space_stream(item.stream_id, SPACE) for item in laid_out))
    events = [
        _event(item.payload, item.version, item.at, stream_id=item.stream_id, offset=offset)
        for offset, item in enumerate(laid_out, start=1)
    ]
    schema = await _schema(pool, RoomRoles)
    writer, follower = RoomRoles(pool, schema, cache_spaces=1), RoomRoles(pool, schema)
    done, turn = 0, 0
    while done < len(events):
        turn += 1
        if turn == 2:
            writer = RoomRoles(pool, schema, cache_spaces=1)  # a restart: nothing in memory
        batch = events[done : done + sizes[turn % len(sizes)]]
        await _apply(pool, writer, batch)
        done += len(batch)
        room = rooms[done - 1]
        for user in (*USERS, HOST):
            expected = (room.role_of(user), room.role_of(user), room.host_user_id)
            for view in (writer, follower):
                roles = await view.roles(SPACE, user, user)
                assert (roles.actor, roles.target, roles.host_user_id) == expected, (user, view)
        own = sum(is_space_stream(item.stream_id, SPACE) for item in laid_out[:done])
        version = await pool.fetchval(
            f"SELECT version FROM {schema}.room_rosters_v1 WHERE space_id = $1", SPACE
        )
        assert version == own
    if turn >= 2 and not rooms[-1].is_over:  # the restarted writer loaded the Space from the rows
        assert writer.loaded >= 1


async def test_a_space_the_view_never_saw_is_unknown_and_a_target_is_optional(pool):
    schema = await _schema(pool, RoomRoles)
    roles = await RoomRoles(pool, schema).roles("nowhere", HOST, "someone")
    assert (roles.actor, roles.target, roles.host_user_id) == (0, 0, "")


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(n: int, space_id: str, reason: int, target: str = "") -> ConsumedEvent:
    at = T0 + timedelta(minutes=n)
    if target:
        payload = mev.ParticipantReported(
            report_id=f"r{n}", space_id=space_id, target_user_id=target, reason=reason,
            text=f"report {n}", reporter_user_id=f"u{n}",
        )  # fmt: skip
    else:
        payload = mev.SpaceReported(
            report_id=f"r{n}", space_id=space_id, reason=reason, text=f"report {n}", reporter_user_id=f"u{n}"
        )
    return _event(payload, n, at, MODERATION_EVENTS.name, space_id)


async def test_the_report_index_filters_orders_and_pages_with_sql(pool):
    spam, abuse = mt.REPORT_REASON_SPAM, mt.REPORT_REASON_HARASSMENT
    schema = await _schema(pool, ReportIndex)
    index = ReportIndex(pool, schema)
    reports = [
        _report(n, "s1" if n % 2 else "s2", spam if n < 4 else abuse, "t" if n == 3 else "")
        for n in range(1, 7)
    ]
    resolved = mev.ReportResolved(
        report_id="r2", space_id="s2", resolution=mt.RESOLUTION_NO_ACTION, resolver_user_id="ts"
    )
    await _apply(pool, index, reports[:3])
    await _apply(pool, index, [*reports[3:], _event(resolved, 7, T0 + timedelta(hours=1), space_id="s2")])
    await _apply(pool, index, reports[:1])  # a report applied again changes nothing

    async def ids(space_id="", state=0, reason=0, since=0, size=0, token=""):
        page = parse_page(size, token, [space_id, state, reason, since])
        found, next_token = await index.query(space_id, state, reason, since, page)
        return [r.report_id for r in found], next_token

    assert (await ids())[0] == ["r6", "r5", "r4", "r3", "r2", "r1"]  # newest first
    assert (await ids(space_id="s1"))[0] == ["r5", "r3", "r1"]
    assert (await ids(state=mt.REPORT_STATE_RESOLVED))[0] == ["r2"]
    assert (await ids(state=mt.REPORT_STATE_OPEN, reason=spam))[0] == ["r3", "r1"]
    since = int((T0 + timedelta(minutes=4)).timestamp())
    assert (await ids(since=since))[0] == ["r6", "r5", "r4"]
    first, token = await ids(size=4)
    rest, last = await ids(size=4, token=token)
    assert (first, rest, last) == (["r6", "r5", "r4", "r3"], ["r2", "r1"], "")

    page = parse_page(0, "", ["s2", mt.REPORT_STATE_RESOLVED, 0, 0])
    [r2], _ = await index.query("s2", mt.REPORT_STATE_RESOLVED, 0, 0, page)
    assert (r2.resolution, r2.resolved_by_user_id, r2.text) == (mt.RESOLUTION_NO_ACTION, "ts", "report 2")
    assert r2.resolved_at.ToDatetime(UTC) == T0 + timedelta(hours=1)
    assert r2.reported_at.ToDatetime(UTC) == T0 + timedelta(minutes=2)
    page = parse_page(0, "", ["s1", 0, spam, 0])
    r3 = (await index.query("s1", 0, spam, 0, page))[0][0]
    assert (r3.target_user_id, r3.reporter_user_id, r3.state) == ("t", "u3", mt.REPORT_STATE_OPEN)
