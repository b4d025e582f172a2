import uuid
from datetime import UTC, datetime, timedelta, timezone

import grpc
from google.rpc import error_details_pb2, status_pb2

from libs.domain.errors import FieldViolation, InvalidArgument, ResourceExhausted
from libs.domain.reasons import Reason
from libs.events.envelope import Causation, decode, occurred_at, wrap
from libs.events.ids import new_id, uuid7
from libs.grpckit.errors import to_status
from podium.room.v1 import room_events_pb2


def test_envelope_round_trips_payload_and_metadata():
    when = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)
    envelope = wrap(
        room_events_pb2.SpaceStarted(space_id="s1", host_user_id="h"),
        producer="room",
        stream_id="space-s1",
        version=7,
        space_id="s1",
        occurred_at=when,
        causation=Causation("h", "corr", "cause", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
    )
    parsed, payload = decode(envelope.SerializeToString())
    assert parsed.event_type == "podium.room.v1.SpaceStarted"
    assert parsed.stream_version == 7 and parsed.producer == "room" and parsed.causation_id == "cause"
    assert parsed.traceparent.startswith("00-")
    assert occurred_at(parsed) == when
    assert payload == room_events_pb2.SpaceStarted(space_id="s1", host_user_id="h")


def test_uuid7_is_version_7_and_time_ordered():
    ids = [uuid7() for _ in range(100)]
    assert all(i.version == 7 for i in ids)
    assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)


def test_new_id_is_a_canonical_uuid7_with_random_bits_in_every_free_digit():
    ids = [new_id() for _ in range(4000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids  # canonical: lower-case, hyphens where they belong
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == len(ids)
    # every hex digit after the version digit varies, the variant's digit over all four values
    for position in (15, 16, 17, 20, 21, 22, *range(24, 36)):
        assert len({i[position] for i in ids}) == 16, position
    assert {i[19] for i in ids} == set("89ab")


def test_wrapped_events_keep_each_their_own_time():
    first = datetime(2026, 11, 24, 12, 0, 0, 1, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    times = [first, first, second, first, second.astimezone(timezone(timedelta(hours=2)))]
    envelopes = [
        wrap(
            room_events_pb2.SpaceStarted(space_id="s1"),
            producer="room",
            stream_id="space-s1",
            version=n + 1,
            space_id="s1",
            occurred_at=at,
            causation=Causation("h", "corr", "cause"),
        )
        for n, at in enumerate(times)
    ]
    assert [occurred_at(e) for e in envelopes] == times
    assert len({e.event_id for e in envelopes}) == len(times)


def _details(status: grpc.Status) -> status_pb2.Status:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    return status_pb2.Status.FromString(raw)


def test_invalid_argument_carries_field_violations_and_error_info():
    status = to_status(
        InvalidArgument("bad title", [FieldViolation("title", "too long")], reason=Reason.INVITE_INVALID)
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "bad title"
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    details = _details(status).details
    assert details[0].Unpack(info) and info.reason == "INVITE_INVALID" and info.domain == "podium.dev"
    assert details[1].Unpack(bad) and bad.field_violations[0].field == "title"


def test_resource_exhausted_maps_to_its_code():
    status = to_status(ResourceExhausted("no more speakers", reason=Reason.SPEAKER_LIMIT_REACHED))
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
