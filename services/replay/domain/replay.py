"""One Space's replay as a stream of events: finalized once, listened to, deleted once.

    decide(command, state, context) -> events      evolve(state, event, at) -> state

The stream is `replay-<space_id>` in the replay service's own store, so the
`(stream_id, version)` constraint makes "finalized exactly once" hold even when
two workers (or a worker and its restarted self) finish the same job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from google.protobuf.message import Message

from libs.domain.decider import SYSTEM_CLAIM, Context, Decider
from libs.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from libs.domain.reasons import Reason
from podium.replay.v1 import replay_events_pb2 as rpe


@dataclass(frozen=True)
class Finalize:
    space_id: str
    duration: timedelta
    size_bytes: int
    speaker_ids: tuple[str, ...]
    recording_started_at: datetime
    ended_at: datetime


@dataclass(frozen=True)
class Delete:
    space_id: str
    host_user_id: str  # from the room's events: only the host may delete


@dataclass(frozen=True)
class Expire:
    space_id: str
    expires_at: datetime


@dataclass(frozen=True)
class RecordListen:
    space_id: str


@dataclass(frozen=True)
class ReplayStream:
    finalized: bool = False
    finalized_at: datetime | None = None
    deleted: int = rpe.DELETION_REASON_UNSPECIFIED
    listens: int = 0


INITIAL = ReplayStream()


def decide(command: object, state: ReplayStream, context: Context) -> list[Message]:
    match command:
        case Finalize():
            if SYSTEM_CLAIM not in context.claims:
                raise PermissionDenied("only the replay service finalizes replays", reason=Reason.NOT_SYSTEM)
            if state.finalized:
                return []  # a re-run after a restart: it is already done
            event = rpe.ReplayFinalized(
                space_id=command.space_id,
                size_bytes=command.size_bytes,
                speaker_ids=list(command.speaker_ids),
            )
            event.duration.FromTimedelta(command.duration)
            event.recording_started_at.FromDatetime(command.recording_started_at)
            event.ended_at.FromDatetime(command.ended_at)
            return [event]
        case Delete():
            _require_available(state, command.space_id)
            if context.actor_user_id != command.host_user_id:
                raise PermissionDenied("only the Space's host can delete its replay", reason=Reason.NOT_HOST)
            return [rpe.ReplayDeleted(space_id=command.space_id, reason=rpe.DELETION_REASON_HOST_DELETED)]
        case Expire():
            if not state.finalized or state.deleted:
                return []
            if context.now < command.expires_at:
                raise FailedPrecondition("the replay has not expired yet", reason=Reason.NOT_EXPIRED)
            return [
                rpe.ReplayDeleted(space_id=command.space_id, reason=rpe.DELETION_REASON_RETENTION_EXPIRED)
            ]
        case RecordListen():
            _require_available(state, command.space_id)
            return [rpe.ReplayListened(space_id=command.space_id, user_id=context.actor_user_id)]
    raise TypeError(f"unknown command {command!r}")


def _require_available(state: ReplayStream, space_id: str) -> None:
    if not state.finalized:
        raise NotFound(f"space {space_id!r} has no finalized replay", reason=Reason.REPLAY_NOT_FOUND)
    if state.deleted == rpe.DELETION_REASON_RETENTION_EXPIRED:
        raise NotFound(
            f"the replay of space {space_id!r} expired and was deleted", reason=Reason.REPLAY_EXPIRED
        )
    if state.deleted:
        raise NotFound(
            f"the replay of space {space_id!r} was deleted by its host", reason=Reason.REPLAY_DELETED
        )


def evolve(state: ReplayStream, event: Message, at: datetime) -> ReplayStream:
    match event:
        case rpe.ReplayFinalized():
            return replace(state, finalized=True, finalized_at=at)
        case rpe.ReplayDeleted():
            return replace(state, deleted=event.reason or rpe.DELETION_REASON_HOST_DELETED)
        case rpe.ReplayListened():
            return replace(state, listens=state.listens + 1)
    return state


REPLAY_DECIDER: Decider = Decider(decide=decide, evolve=evolve, initial_state=INITIAL)
