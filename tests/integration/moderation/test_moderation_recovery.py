"""Moderation's durable views across a restart and across replicas."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from podium.moderation.v1 import moderation_types_pb2 as mt
from tests.integration.clients import ModerationClient, RoomClient, error_reason

pytestmark = pytest.mark.integration
SPAM = mt.REPORT_REASON_SPAM
TS = ["trust-and-safety"]


async def _all_reports(client: ModerationClient) -> list:
    reports, token = [], ""
    while True:
        page = await client.ListReports(page_size=2, page_token=token)
        reports.extend(page.reports)
        token = page.next_page_token
        if not token:
            return reports


async def _reports(client: ModerationClient, count: int) -> list:
    """Every report, page by page, once the index holds `count` (offset pages of a list that
    still grows may repeat or skip one)."""
    async with asyncio.timeout(20):
        while len((await client.ListReports(page_size=1000)).reports) < count:
            await asyncio.sleep(0.05)
    return await _all_reports(client)


async def _muted_speaker(room, moderation, prefix: str, report: bool = True) -> tuple[str, str, str]:
    """A live Space whose guest the host promoted and muted (and who reported the Space)."""
    host, guest = f"{prefix}-host", f"{prefix}-guest"
    host_r = RoomClient(room.channel, host)
    space_id = (await host_r.CreateSpace(title=prefix)).space.space_id
    await host_r.StartSpace(space_id=space_id)
    await RoomClient(room.channel, guest).JoinSpace(space_id=space_id)
    promoted = await host_r.InviteToSpeak(space_id=space_id, user_id=guest)
    await ModerationClient(moderation.channel, host).MuteParticipant(
        space_id=space_id, user_id=guest, room_version=promoted.space.version
    )
    if report:
        await ModerationClient(moderation.channel, guest).ReportSpace(
            space_id=space_id, reason=SPAM, text=f"{prefix} report"
        )
    return space_id, host, guest


async def test_a_restart_resumes_the_views_from_their_stored_positions(
    service_factory, private_broker, private_database_url
):
    """Nothing is read again from offset 0: neither view applies anything it had applied before,
    yet the roles and the reports answer as before, from the rows."""
    where = {"broker": private_broker, "database": private_database_url}
    room, moderation = await asyncio.gather(
        service_factory("room", **where), service_factory("moderation", **where)
    )
    spaces = [await _muted_speaker(room, moderation, f"resume-{i}") for i in range(6)]
    before = await _reports(ModerationClient(moderation.channel, "resume-ts", roles=TS), len(spaces))

    await moderation.terminate()
    await moderation.restart()
    log = moderation.process.log_path.read_text().splitlines()
    for view in ("moderation-room-roles", "moderation-report-index"):
        caught_up = [line for line in log if f"projection {view} caught up" in line]
        assert len(caught_up) == 2, caught_up
        # Every event came after the first start's catch-up: a restart that read the log again
        # from offset 0 would apply them all again before SERVING.
        assert "caught up: 0 events" in caught_up[1], caught_up[1]
    conn = await asyncpg.connect(private_database_url)
    try:
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM moderation.room_rosters_v1) AS rosters,
                      (SELECT count(*) FROM moderation.room_members_v1) AS members,
                      (SELECT count(*) FROM moderation.reports_v1) AS reports,
                      (SELECT count(*) FROM room.events) AS room_events,
                      (SELECT count(*) FROM moderation.events) AS moderation_events"""
        )
        positions = dict(
            await conn.fetch("SELECT view, sum(next_offset) FROM moderation.view_positions GROUP BY view")
        )
    finally:
        await conn.close()
    assert (counts["rosters"], counts["members"], counts["reports"]) == (6, 12, 6)
    assert positions == {  # each view stands at the end of its topic
        "moderation-room-roles": counts["room_events"],
        "moderation-report-index": counts["moderation_events"],
    }

    ts = ModerationClient(moderation.channel, "resume-ts", roles=TS)
    assert await _all_reports(ts) == before
    for space_id, host, guest in spaces:  # the host's and the speaker's roles, from the rows
        await ModerationClient(moderation.channel, host).UnmuteParticipant(space_id=space_id, user_id=guest)
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # and a guest is no host
        await ModerationClient(moderation.channel, spaces[0][2]).MuteParticipant(
            space_id=spaces[0][0], user_id=spaces[0][1]
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_second_replica_answers_from_the_rows_the_writer_keeps(room, moderation, service_factory):
    """The session's moderation process writes the views; a second one follows and applies
    nothing, yet answers roles, consistency tokens and reports alike."""
    follower = await service_factory("moderation")
    try:
        space_id, host, guest = await _muted_speaker(room, follower, "follow", report=False)
        host_f = ModerationClient(follower.channel, host)
        await host_f.UnmuteParticipant(space_id=space_id, user_id=guest)
        await RoomClient(room.channel, "follow-listener").JoinSpace(space_id=space_id)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await host_f.MuteParticipant(space_id=space_id, user_id="follow-listener")
        assert error_reason(refused.value) == "NOT_A_SPEAKER"
        report = await ModerationClient(moderation.channel, guest).ReportSpace(space_id=space_id, reason=SPAM)
        ts = ModerationClient(follower.channel, "follow-ts", roles=TS)
        async with asyncio.timeout(20):
            while not (listed := (await ts.ListReports(space_id=space_id)).reports):
                await asyncio.sleep(0.05)
        assert [r.report_id for r in listed] == [report.report_id]
        caught_up = [
            line
            for line in follower.process.log_path.read_text().splitlines()
            if "projection moderation-room-roles caught up" in line
        ]
        assert len(caught_up) == 1 and "caught up: 0 events" in caught_up[0], caught_up  # a follower
    finally:
        await follower.stop()
