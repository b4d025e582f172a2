"""RoomService over real gRPC, against a room process with real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import field_mask_pb2

from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET
from libs.events.envelope import unwrap
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as types
from tests.integration.clients import RoomClient, error_reason, field_violations

pytestmark = pytest.mark.integration

LIVE, ENDED = types.SPACE_STATE_LIVE, types.SPACE_STATE_ENDED


async def _live_space(host: RoomClient, **fields) -> str:
    created = await host.CreateSpace(title=fields.pop("title", "Morning audio"), **fields)
    await host.StartSpace(space_id=created.space.space_id)
    return created.space.space_id


async def _rejected(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    assert caught.value.details(), "every rejection carries a message"
    return caught.value


async def test_a_space_from_creation_to_end(room, users):
    host, ann, ben, cat = users("host", "ann", "ben", "cat")
    created = await host.CreateSpace(title="Friday hangout", description="chat", recording_enabled=True)
    space_id = created.space.space_id
    assert created.space.state == types.SPACE_STATE_CREATED and created.space.host_user_id == "host"

    started = await host.StartSpace(space_id=space_id)
    assert started.space.state == LIVE
    for listener in (ann, ben, cat):
        joined = await listener.JoinSpace(space_id=space_id)
        assert joined.role == types.ROLE_LISTENER
    assert (await ann.RequestToSpeak(space_id=space_id)).position == 1
    assert (await ben.RequestToSpeak(space_id=space_id)).position == 2
    queue = await host.ListSpeakRequests(space_id=space_id)
    assert [r.user_id for r in queue.requests] == ["ann", "ben"]
    await host.ApproveSpeakRequest(space_id=space_id, user_id="ann")
    await host.DenySpeakRequest(space_id=space_id, user_id="ben")
    await host.AddCoHost(space_id=space_id, user_id="cat")
    await ben.LeaveSpace(space_id=space_id)

    people = await cat.ListParticipants(space_id=space_id)
    assert [(p.user_id, p.role) for p in people.participants] == [
        ("host", types.ROLE_HOST),
        ("cat", types.ROLE_CO_HOST),
        ("ann", types.ROLE_SPEAKER),
    ]
    ended = await host.EndSpace(space_id=space_id)
    assert ended.space.state == ENDED
    await _rejected(ann.JoinSpace(space_id=space_id), grpc.StatusCode.FAILED_PRECONDITION)


async def test_get_participant_gives_one_person_and_not_found_says_why(room, users):
    host, ann, ben = users("host", "ann", "ben")
    space_id = await _live_space(host)
    await ann.JoinSpace(space_id=space_id)
    await host.InviteToSpeak(space_id=space_id, user_id="ann")

    got = (await ben.GetParticipant(space_id=space_id, user_id="ann")).participant
    listed = {p.user_id: p for p in (await ben.ListParticipants(space_id=space_id)).participants}
    assert got.role == types.ROLE_SPEAKER and got == listed["ann"]
    assert (await ann.GetParticipant(space_id=space_id, user_id="host")).participant.role == types.ROLE_HOST

    absent = await _rejected(ann.GetParticipant(space_id=space_id, user_id="ben"), grpc.StatusCode.NOT_FOUND)
    assert error_reason(absent) == "PARTICIPANT_NOT_FOUND"
    await ann.LeaveSpace(space_id=space_id)
    left = await _rejected(ben.GetParticipant(space_id=space_id, user_id="ann"), grpc.StatusCode.NOT_FOUND)
    assert error_reason(left) == "PARTICIPANT_NOT_FOUND"
    unknown = await _rejected(
        ben.GetParticipant(space_id="no-such-space", user_id="ann"), grpc.StatusCode.NOT_FOUND
    )
    assert error_reason(unknown) == "SPACE_NOT_FOUND"
    nobody = await _rejected(ben.GetParticipant(space_id=space_id), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(nobody) == ["user_id"]


async def test_events_reach_the_topic_in_order(room, users, room_topic_events):
    host, ann = users("host", "ann")
    space_id = await _live_space(host)
    await ann.JoinSpace(space_id=space_id)
    await ann.RequestToSpeak(space_id=space_id)
    await host.ApproveSpeakRequest(space_id=space_id, user_id="ann")
    events = await room_topic_events(space_id, count=7)
    assert [e.event_type.rsplit(".", 1)[1] for e in events] == [
        "SpaceCreated",
        "SpaceStarted",
        "ParticipantJoined",
        "ParticipantJoined",
        "SpeakRequested",
        "SpeakRequestApproved",
        "SpeakerAdded",
    ]
    assert [e.stream_version for e in events] == list(range(1, 8))
    assert {e.producer for e in events} == {"room"}
    assert events[3].actor_user_id == "ann"


async def test_bad_inputs_get_clear_statuses_and_change_nothing(room, users):
    host, ann = users("host", "ann")
    space_id = await _live_space(host)
    before = (await host.GetSpace(space_id=space_id)).space.version

    error = await _rejected(host.CreateSpace(title=""), grpc.StatusCode.INVALID_ARGUMENT)
    assert "title" in field_violations(error)
    error = await _rejected(host.CreateSpace(title="x" * 10_000), grpc.StatusCode.INVALID_ARGUMENT)
    assert "title" in field_violations(error)
    await _rejected(host.GetSpace(space_id="no-such-space"), grpc.StatusCode.NOT_FOUND)
    await _rejected(ann.JoinSpace(space_id="no-such-space"), grpc.StatusCode.NOT_FOUND)
    await _rejected(host.GetSpace(space_id=""), grpc.StatusCode.INVALID_ARGUMENT)

    anonymous = RoomClient(room.channel, "anon", token="")
    error = await _rejected(anonymous.JoinSpace(space_id=space_id), grpc.StatusCode.UNAUTHENTICATED)
    assert error_reason(error) == "TOKEN_MISSING"
    expired = RoomClient(room.channel, "ann", mint_token(DEV_JWT_SECRET, "ann", now=time.time() - 7200))
    assert (
        "expired"
        in (await _rejected(expired.JoinSpace(space_id=space_id), grpc.StatusCode.UNAUTHENTICATED)).details()
    )
    forged = RoomClient(
        room.channel, "host", mint_token("a-forged-key-that-is-long-enough-for-hs256", "host")
    )
    await _rejected(forged.EndSpace(space_id=space_id), grpc.StatusCode.UNAUTHENTICATED)
    alg_none = RoomClient(
        room.channel,
        "host",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJob3N0IiwiYXVkIjoicG9kaXVtIiwiZXhwIjo5OTk5OTk5OTk5fQ.",
    )
    await _rejected(alg_none.EndSpace(space_id=space_id), grpc.StatusCode.UNAUTHENTICATED)

    await ann.JoinSpace(space_id=space_id)
    await _rejected(ann.EndSpace(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    await _rejected(ann.AddCoHost(space_id=space_id, user_id="ann"), grpc.StatusCode.PERMISSION_DENIED)
    await _rejected(ann.InviteToSpeak(space_id=space_id, user_id="ann"), grpc.StatusCode.PERMISSION_DENIED)
    await _rejected(ann.ListSpeakRequests(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    after_rejections = (await host.GetSpace(space_id=space_id)).space.version
    assert after_rejections == before + 1  # only ann's join wrote anything


async def test_the_fourteenth_voice_is_refused(room, users):
    host, *others = users("host", *(f"v{i}" for i in range(14)))
    space_id = await _live_space(host)
    for user in others:
        await user.JoinSpace(space_id=space_id)
    await host.AddCoHost(space_id=space_id, user_id="v0")
    await host.AddCoHost(space_id=space_id, user_id="v1")
    await _rejected(host.AddCoHost(space_id=space_id, user_id="v2"), grpc.StatusCode.RESOURCE_EXHAUSTED)
    for user in others[2:12]:
        await host.InviteToSpeak(space_id=space_id, user_id=user.user_id)
    version = (await host.GetSpace(space_id=space_id)).space.version
    error = await _rejected(
        host.InviteToSpeak(space_id=space_id, user_id="v12"), grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert error_reason(error)
    await others[13].RequestToSpeak(space_id=space_id)
    await _rejected(
        host.ApproveSpeakRequest(space_id=space_id, user_id="v13"), grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    space = (await host.GetSpace(space_id=space_id)).space
    assert len(space.co_host_user_ids) == 2 and len(space.speaker_user_ids) == 10
    assert space.version == version + 1  # v13's request, nothing else


async def test_a_retried_request_id_returns_the_first_answer_and_writes_once(room, users):
    host, ann = users("host", "ann")
    space_id = await _live_space(host)
    first = await ann.JoinSpace(space_id=space_id, request_id="join-1")
    await ann.LeaveSpace(space_id=space_id)
    again = await ann.JoinSpace(space_id=space_id, request_id="join-1")
    assert again == first
    space = (await host.GetSpace(space_id=space_id)).space
    assert space.participant_count == 1  # ann left; the retry did not rejoin her
    other = await _rejected(
        ann.JoinSpace(space_id="another", request_id="join-1"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert error_reason(other) == "REQUEST_ID_REUSED"


async def test_invited_only_spaces_admit_invitees_and_link_holders(room, users):
    host, ann, ben, cat = users("host", "ann", "ben", "cat")
    space_id = await _live_space(host, join_policy=types.JOIN_POLICY_INVITED_ONLY)
    await _rejected(ann.JoinSpace(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    await host.InviteUsers(space_id=space_id, user_ids=["ann"])
    await ann.JoinSpace(space_id=space_id)
    link = await host.CreateInviteLink(space_id=space_id)
    assert link.url.endswith(link.token) and link.expires_at.seconds > time.time()
    await ben.JoinSpace(space_id=space_id, invite_token=link.token)
    await _rejected(
        cat.JoinSpace(space_id=space_id, invite_token="garbage"), grpc.StatusCode.INVALID_ARGUMENT
    )
    other_space = await _live_space(host, join_policy=types.JOIN_POLICY_INVITED_ONLY)
    await _rejected(
        cat.JoinSpace(space_id=other_space, invite_token=link.token), grpc.StatusCode.PERMISSION_DENIED
    )


async def test_turning_invite_only_evicts_the_listeners_it_no_longer_admits(room, users, room_topic_events):
    host, spk, ivy, gus, walk, drop = users("host", "spk", "ivy", "gus", "walk", "drop")
    space_id = await _live_space(host)
    await host.InviteUsers(space_id=space_id, user_ids=["ivy"])
    link = await host.CreateInviteLink(space_id=space_id)
    for user in (spk, ivy, walk, drop):
        await user.JoinSpace(space_id=space_id)
    await gus.JoinSpace(space_id=space_id, invite_token=link.token)
    await host.InviteToSpeak(space_id=space_id, user_id="spk")
    closed = await host.UpdateSpace(
        space_id=space_id,
        join_policy=types.JOIN_POLICY_INVITED_ONLY,
        update_mask=field_mask_pb2.FieldMask(paths=["join_policy"]),
    )
    # New joins follow the new policy at once, before any eviction.
    await _rejected(users("late")[0].JoinSpace(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    # The evictor takes out the two who came in while the Space was open, and nobody else.
    events = await room_topic_events(space_id, count=14)
    left = [e for e in events if e.event_type.endswith("ParticipantLeft")]
    assert all(e.stream_version > closed.space.version for e in left)
    assert sorted((unwrap(e).user_id, unwrap(e).reason) for e in left) == [
        ("drop", rev.LEAVE_REASON_POLICY),
        ("walk", rev.LEAVE_REASON_POLICY),
    ]
    present = {p.user_id for p in (await host.ListParticipants(space_id=space_id)).participants}
    assert present == {"host", "spk", "ivy", "gus"}
    error = await _rejected(walk.JoinSpace(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    assert error_reason(error) == "NOT_INVITED"  # evicted, not barred: an invitation lets them back
    await host.InviteUsers(space_id=space_id, user_ids=["walk"])
    await walk.JoinSpace(space_id=space_id)
    assert (await host.GetSpace(space_id=space_id)).space.listener_count == 3


async def test_update_and_cancel_a_scheduled_space(room, users):
    host, ann = users("host", "ann")
    from datetime import UTC, datetime, timedelta

    from google.protobuf.timestamp_pb2 import Timestamp

    when = Timestamp()
    when.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    created = await host.CreateSpace(title="Later", scheduled_start=when)
    space_id = created.space.space_id
    assert created.space.state == types.SPACE_STATE_SCHEDULED
    updated = await host.UpdateSpace(
        space_id=space_id, title="Later today", update_mask=field_mask_pb2.FieldMask(paths=["title"])
    )
    assert updated.space.title == "Later today"
    error = await _rejected(
        host.UpdateSpace(space_id=space_id, update_mask=field_mask_pb2.FieldMask(paths=["host_user_id"])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "update_mask" in field_violations(error)
    await _rejected(ann.CancelSpace(space_id=space_id), grpc.StatusCode.PERMISSION_DENIED)
    cancelled = await host.CancelSpace(space_id=space_id)
    assert cancelled.space.state == types.SPACE_STATE_CANCELLED
    await _rejected(host.StartSpace(space_id=space_id), grpc.StatusCode.FAILED_PRECONDITION)


async def test_list_spaces_filters_by_state_and_host_and_paginates(room, users):
    (host,) = users("lister")
    live = [await _live_space(host, title=f"live {i}") for i in range(3)]
    await host.CreateSpace(title="not started")
    seen: list[str] = []
    token = ""
    async with asyncio.timeout(10):
        while sorted(seen) != sorted(live):
            seen, token = [], ""
            while True:
                page = await host.ListSpaces(
                    states=[LIVE], host_user_id="lister", page_size=2, page_token=token
                )
                assert len(page.spaces) <= 2
                seen.extend(s.space_id for s in page.spaces)
                token = page.next_page_token
                if not token:
                    break
            await asyncio.sleep(0.05)
    await _rejected(host.ListSpaces(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT)


async def test_health_and_reflection_are_served(room):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(room.channel)
    for service in ("", "podium.room.v1.RoomService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(room.channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in stub.ServerReflectionInfo(ask()):
        names = {s.name for s in reply.list_services_response.service}
        assert "podium.room.v1.RoomService" in names
        break
