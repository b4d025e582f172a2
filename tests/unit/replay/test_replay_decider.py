"""The replay stream's decisions: finalized once, deleted once and by the host, expired by retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.domain.decider import Context, fold
from libs.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from podium.replay.v1 import replay_events_pb2 as rpe
from services.replay.domain.replay import (
    INITIAL,
    SYSTEM_CLAIM,
    Delete,
    Expire,
    Finalize,
    RecordListen,
    decide,
    evolve,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SYSTEM = Context("system:replay", NOW, frozenset({SYSTEM_CLAIM}))
FINALIZE = Finalize("s", timedelta(seconds=4), 1234, ("a", "b"), NOW, NOW)


def given(*events):
    return fold(evolve, INITIAL, ((e, NOW) for e in events))


def finalized():
    return decide(FINALIZE, INITIAL, SYSTEM)[0]


def test_finalizing_writes_one_event_and_a_rerun_writes_none():
    [event] = decide(FINALIZE, INITIAL, SYSTEM)
    assert isinstance(event, rpe.ReplayFinalized) and event.size_bytes == 1234
    assert event.duration.ToTimedelta() == timedelta(seconds=4) and list(event.speaker_ids) == ["a", "b"]
    assert decide(FINALIZE, given(event), SYSTEM) == []


def test_only_the_service_finalizes():
    with pytest.raises(PermissionDenied):
        decide(FINALIZE, INITIAL, Context("mallory", NOW))


def test_only_the_host_deletes_and_only_once():
    state = given(finalized())
    with pytest.raises(PermissionDenied) as denied:
        decide(Delete("s", "host"), state, Context("guest", NOW))
    assert denied.value.reason == "NOT_HOST"
    [deleted] = decide(Delete("s", "host"), state, Context("host", NOW))
    assert deleted.reason == rpe.DELETION_REASON_HOST_DELETED
    with pytest.raises(NotFound) as gone:
        decide(Delete("s", "host"), given(finalized(), deleted), Context("host", NOW))
    assert gone.value.reason == "REPLAY_DELETED"


def test_nothing_to_delete_or_listen_to_before_finalizing():
    with pytest.raises(NotFound):
        decide(Delete("s", "host"), INITIAL, Context("host", NOW))
    with pytest.raises(NotFound):
        decide(RecordListen("s"), INITIAL, Context("fan", NOW))


def test_retention_expires_a_replay_at_its_time_and_not_before():
    state = given(finalized())
    expires = NOW + timedelta(days=30)
    with pytest.raises(FailedPrecondition):
        decide(Expire("s", expires), state, SYSTEM)
    later = Context("system:replay", expires, frozenset({SYSTEM_CLAIM}))
    [expired] = decide(Expire("s", expires), state, later)
    assert expired.reason == rpe.DELETION_REASON_RETENTION_EXPIRED
    assert decide(Expire("s", expires), given(finalized(), expired), later) == []
    with pytest.raises(NotFound) as gone:
        decide(RecordListen("s"), given(finalized(), expired), Context("fan", NOW))
    assert gone.value.reason == "REPLAY_EXPIRED"


def test_listens_are_counted():
    [listened] = decide(RecordListen("s"), given(finalized()), Context("fan", NOW))
    assert listened.user_id == "fan"
    assert given(finalized(), listened, listened).listens == 2
