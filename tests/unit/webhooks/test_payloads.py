"""The JSON body of each webhook event type: the shape docs/webhooks.md documents, field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from libs.events.envelope import Causation, wrap
from podium.moderation.v1 import moderation_events_pb2 as mod
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.replay.v1 import replay_events_pb2 as rep
from podium.room.v1 import room_events_pb2 as room
from podium.room.v1 import room_types_pb2 as rt
from podium.webhooks.v1 import webhook_types_pb2 as wt
from services.webhooks.domain.event_types import ALL_TYPES, NAMES, webhook_type
from services.webhooks.domain.payloads import enum_name, webhook_body

AT = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def stamp(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


START = stamp(AT + timedelta(hours=2))

# (event, expected type, expected data)
CASES = [
    (
        room.SpaceCreated(
            space_id="s1", host_user_id="h", title="T", description="D",
            join_policy=rt.JOIN_POLICY_INVITED_ONLY, scheduled_start=START, recording_enabled=True,
        ),
        "space.scheduled",
        {"host_user_id": "h", "title": "T", "description": "D", "join_policy": "invited_only",
         "scheduled_start": "2026-12-01T14:00:00.250Z", "recording_enabled": True},
    ),
    (room.SpaceStarted(space_id="s1", host_user_id="h"), "space.started", {"host_user_id": "h"}),
    (room.SpaceEnded(space_id="s1", reason=room.END_REASON_ABANDONED), "space.ended", {"reason": "abandoned"}),
    (room.SpaceCancelled(space_id="s1"), "space.cancelled", {}),
    (
        room.ParticipantJoined(space_id="s1", user_id="u", role=rt.ROLE_LISTENER, source=room.JOIN_SOURCE_DIRECT),
        "participant.joined",
        {"user_id": "u", "role": "listener", "source": "direct"},
    ),
    (
        room.ParticipantJoined(
            space_id="s1", user_id="u", role=rt.ROLE_LISTENER, source=room.JOIN_SOURCE_INVITE_LINK,
            invite_link_id="l1",
        ),
        "participant.joined",
        {"user_id": "u", "role": "listener", "source": "invite_link", "invite_link_id": "l1"},
    ),
    (
        room.ParticipantLeft(
            space_id="s1", user_id="u", reason=room.LEAVE_REASON_REMOVED, previous_role=rt.ROLE_SPEAKER
        ),
        "participant.left",
        {"user_id": "u", "reason": "removed", "previous_role": "speaker"},
    ),
    (
        room.CoHostAdded(space_id="s1", user_id="u"),
        "participant.role_changed",
        {"user_id": "u", "role": "co_host", "change": "co_host_added"},
    ),
    (
        room.CoHostRemoved(space_id="s1", user_id="u"),
        "participant.role_changed",
        {"user_id": "u", "role": "listener", "change": "co_host_removed"},
    ),
    (
        room.SpeakerAdded(space_id="s1", user_id="u", source=room.SPEAKER_SOURCE_REQUEST_APPROVED),
        "participant.role_changed",
        {"user_id": "u", "role": "speaker", "change": "speaker_added", "reason": "request_approved"},
    ),
    (
        room.SpeakerRemoved(space_id="s1", user_id="u", reason=room.SPEAKER_REMOVAL_REASON_STEPPED_DOWN),
        "participant.role_changed",
        {"user_id": "u", "role": "listener", "change": "speaker_removed", "reason": "stepped_down"},
    ),
    (
        mod.ParticipantMuted(space_id="s1", user_id="u", kind=mt.MUTE_KIND_AUTO, report_ids=["r1"]),
        "participant.muted",
        {"user_id": "u", "kind": "auto"},
    ),
    (
        mod.ParticipantUnmuted(space_id="s1", user_id="u", lifted=mt.MUTE_KIND_HOST),
        "participant.unmuted",
        {"user_id": "u", "lifted": "host"},
    ),
    (
        mod.ParticipantRemoved(space_id="s1", user_id="u", reason="spam"),
        "participant.removed",
        {"user_id": "u", "reason": "spam"},
    ),
    (
        rep.ReplayFinalized(
            space_id="s1", duration=Duration(seconds=90, nanos=500_000_000), size_bytes=1234,
            speaker_ids=["h", "u"], recording_started_at=stamp(AT), ended_at=stamp(AT + timedelta(seconds=91)),
        ),
        "recording.ready",
        {"duration_seconds": 90.5, "size_bytes": 1234, "speaker_user_ids": ["h", "u"],
         "recording_started_at": "2026-12-01T12:00:00.250Z", "ended_at": "2026-12-01T12:01:31.250Z"},
    ),
    (
        rep.ReplayDeleted(space_id="s1", reason=rep.DELETION_REASON_RETENTION_EXPIRED),
        "replay.deleted",
        {"reason": "retention_expired"},
    ),
]  # fmt: skip


def envelope_of(event):
    return wrap(
        event,
        producer="room",
        stream_id="space-s1",
        version=7,
        space_id="s1",
        occurred_at=AT,
        causation=Causation(actor_user_id="alice", correlation_id="c", causation_id="k"),
    )


@pytest.mark.parametrize(
    ("event", "kind", "data"), CASES, ids=lambda v: getattr(v, "DESCRIPTOR", None) and v.DESCRIPTOR.name
)
def test_each_event_becomes_its_documented_body(event, kind, data):
    envelope = envelope_of(event)
    body = webhook_body(envelope, event)
    assert body is not None and NAMES[body.event_type] == kind
    assert json.loads(body.json) == {
        "id": envelope.event_id,
        "type": kind,
        "space_id": "s1",
        "occurred_at": "2026-12-01T12:00:00.250Z",
        "actor_user_id": "alice",
        "data": data,
    }
    assert "\n" not in body.json and ", " not in body.json  # compact: what is signed is what is sent


def test_every_subscribable_type_comes_from_some_event():
    assert {webhook_type(event) for event, _, _ in CASES} == set(ALL_TYPES)
    assert len(ALL_TYPES) == len(wt.WebhookEventType.keys()) - 1  # every enum value but UNSPECIFIED


def test_events_no_webhook_is_told_of_have_no_body():
    unscheduled = room.SpaceCreated(space_id="s1", host_user_id="h", title="now")
    for event in (
        unscheduled,
        room.SpeakRequested(space_id="s1", user_id="u"),
        mod.SpaceReported(space_id="s1"),
    ):
        assert webhook_body(envelope_of(event), event) is None


def test_enum_values_are_lower_case_names_unset_is_null_and_an_unknown_number_stays_a_number():
    assert enum_name(rt.Role.DESCRIPTOR, rt.ROLE_CO_HOST) == "co_host"
    assert enum_name(rt.Role.DESCRIPTOR, rt.ROLE_UNSPECIFIED) is None
    assert enum_name(rt.Role.DESCRIPTOR, 99) == "99"
    body = webhook_body(envelope_of(room.SpaceEnded(space_id="s1")), room.SpaceEnded(space_id="s1"))
    assert body is not None and json.loads(body.json)["data"] == {"reason": None}
