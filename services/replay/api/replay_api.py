"""The ReplayService servicer: requests become replay commands; queries read the views and files."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from libs.application.read_your_writes import reach_room
from libs.domain.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from libs.domain.reasons import Reason
from libs.grpckit.handlers import Authenticator, Caller, server_stream, unary
from libs.grpckit.pagination import micros, paginate, parse_page
from libs.grpckit.validation import duration_field, optional_id, require_id, timestamp_field
from libs.projection.runner import ProjectionRunner
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.replay.v1 import replay_service_pb2 as pb
from podium.replay.v1 import replay_service_pb2_grpc
from podium.replay.v1 import replay_types_pb2 as rt
from services.replay.application.finalizer import delete_files, frames_key, ogg_key
from services.replay.application.replay_commands import ReplayCommands
from services.replay.domain import timeline as tl
from services.replay.domain.audience import visible
from services.replay.domain.replay import Delete, RecordListen
from services.replay.domain.space_at import ROLE_NAMES, state_at
from services.replay.infrastructure.audio import FRAME, FrameIndex
from services.replay.infrastructure.blob_store import BlobStore
from services.replay.infrastructure.jobs import FAILED, JobStore
from services.replay.projections.replay_catalog import ReplayCatalog, SpaceReplay
from services.replay.projections.space_history import SpaceHistory

SPEEDS = (0.0, 1.0, 1.5, 2.0)
DOWNLOAD_CHUNK = 64 * 1024
KINDS = {
    tl.ROLE_CHANGED: rt.TIMELINE_ENTRY_KIND_ROLE_CHANGED,
    tl.STARTED_TALKING: rt.TIMELINE_ENTRY_KIND_STARTED_TALKING,
    tl.STOPPED_TALKING: rt.TIMELINE_ENTRY_KIND_STOPPED_TALKING,
    tl.MUTED: rt.TIMELINE_ENTRY_KIND_MUTED,
    tl.UNMUTED: rt.TIMELINE_ENTRY_KIND_UNMUTED,
    tl.REMOVED: rt.TIMELINE_ENTRY_KIND_REMOVED,
    tl.LISTENERS: rt.TIMELINE_ENTRY_KIND_LISTENERS,
}


class ReplayApi(replay_service_pb2_grpc.ReplayServiceServicer):
    def __init__(
        self,
        authenticator: Authenticator,
        commands: ReplayCommands,
        catalog: ReplayCatalog,
        history: SpaceHistory,
        jobs: JobStore,
        blobs: BlobStore,
        retention: timedelta,
        *,
        room_views: tuple[ProjectionRunner, ...] = (),
        view_wait_seconds: float = 2.0,
    ):
        self.authenticator = authenticator
        self.room_views = room_views  # the runners behind `catalog` and `history`: how far each has read
        self.view_wait_seconds = view_wait_seconds
        self.commands = commands
        self.catalog = catalog
        self.history = history
        self.jobs = jobs
        self.blobs = blobs
        self.retention = retention

    # -- reading ---------------------------------------------------------------------------

    async def _space(self, space_id: str, caller: Caller, seen: tuple[int, str] = (0, "")) -> SpaceReplay:
        """The Space, if it exists and its replay is for the caller (`domain.audience`).

        Refused with PERMISSION_DENIED, not NOT_FOUND: the room's GetSpace and
        ListSpaces already show that the Space exists, so hiding it here would
        protect nothing and only leave the caller unsure why. Answered once the views have reached
        what the caller `seen` (a request's room_version and room_token).
        """
        space_id = require_id(space_id, "space_id")
        await reach_room(
            self.room_views,
            space_id,
            room_version=seen[0],
            room_token=seen[1],
            wait_seconds=self.view_wait_seconds,
            service="replay",
        )
        space = await self.catalog.get(space_id, caller.user_id)
        if space is None:
            raise NotFound(f"space {space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)
        if not visible(space.audience, caller.user_id, caller.identity.roles):
            raise PermissionDenied(
                f"space {space_id!r} is invite-only: its replay is only for its host, co-hosts, the people"
                " admitted to it and trust and safety",
                reason=Reason.REPLAY_NOT_VISIBLE,
            )
        return space

    async def _recorded(self, space_id: str, caller: Caller, seen: tuple[int, str] = (0, "")) -> SpaceReplay:
        space = await self._space(space_id, caller, seen)
        if not space.recording_enabled:
            raise FailedPrecondition(
                f"space {space.space_id!r} was not recorded (its host had recording off), so it has no replay",
                reason=Reason.NOT_RECORDED,
            )
        if space.cancelled:
            raise FailedPrecondition(
                f"space {space.space_id!r} was cancelled; it has no replay", reason=Reason.CANCELLED
            )
        if space.ended_at is None:
            raise FailedPrecondition(
                f"space {space.space_id!r} has not ended yet; its replay is made when it ends",
                reason=Reason.SPACE_NOT_ENDED,
            )
        return space

    async def _ready(self, space_id: str, caller: Caller, seen: tuple[int, str] = (0, "")) -> SpaceReplay:
        space = await self._recorded(space_id, caller, seen)
        if space.deleted == rpe.DELETION_REASON_RETENTION_EXPIRED:
            raise NotFound(
                f"the replay of space {space.space_id!r} expired and was deleted",
                reason=Reason.REPLAY_EXPIRED,
            )
        if space.deleted:
            raise NotFound(
                f"the replay of space {space.space_id!r} was deleted by its host",
                reason=Reason.REPLAY_DELETED,
            )
        if space.finalized_at is None:
            raise FailedPrecondition(
                f"the replay of space {space.space_id!r} is still being finalized; see GetReplay's progress",
                reason=Reason.REPLAY_FINALIZING,
                metadata={"retry": "after GetReplay says READY"},
            )
        return space

    def _replay(self, space: SpaceReplay, history: list | None = None) -> rt.Replay:
        """The replay; with its timeline when given the Space's `history` (up to its end)."""
        replay = rt.Replay(
            space_id=space.space_id,
            host_id=space.host_user_id,
            title=space.title,
            size_bytes=space.size_bytes,
            speaker_ids=space.speaker_ids,
            listens=space.listens,
        )
        if space.deleted == rpe.DELETION_REASON_RETENTION_EXPIRED:
            replay.state = rt.REPLAY_STATE_EXPIRED
        elif space.deleted:
            replay.state = rt.REPLAY_STATE_DELETED
        elif space.finalized_at is not None:
            replay.state = rt.REPLAY_STATE_READY
            replay.expires_at.FromDatetime(space.finalized_at + self.retention)
        else:
            replay.state = rt.REPLAY_STATE_FINALIZING
        for name in ("started_at", "ended_at", "recording_started_at"):
            value = getattr(space, name)
            if value is not None:
                getattr(replay, name).FromDatetime(value)
        if space.finalized_at is not None:
            replay.duration.FromTimedelta(space.duration)
        if history is not None and space.recording_started_at is not None:
            for entry in tl.build(history, space.recording_started_at, until=space.ended_at):
                item = replay.timeline.add(
                    kind=KINDS[entry.kind], user_id=entry.user_id, role=entry.role, listeners=entry.listeners
                )
                item.at.FromTimedelta(min(entry.at, space.duration))
        return replay

    @unary
    async def ListReplays(self, request: pb.ListReplaysRequest, caller: Caller) -> pb.ListReplaysResponse:
        host_id = optional_id(request.host_id, "host_id") or caller.user_id
        page = parse_page(request.page_size, request.page_token, host_id)
        roles = caller.identity.roles
        hosted = await self.catalog.by_host(host_id, caller.user_id)
        replays = [s for s in hosted if visible(s.audience, caller.user_id, roles)]
        failed = await self.jobs.failed([s.space_id for s in replays if s.finalized_at is None])
        spaces, token = paginate(  # newest first
            [s for s in replays if s.space_id not in failed],
            page,
            lambda s: (micros(s.ended_at), s.space_id),
            descending=True,
        )
        return pb.ListReplaysResponse(replays=[self._replay(s) for s in spaces], next_page_token=token)

    @unary
    async def GetReplay(self, request: pb.GetReplayRequest, caller: Caller) -> pb.GetReplayResponse:
        space = await self._recorded(request.space_id, caller, (request.room_version, request.room_token))
        history = None
        if space.recording_started_at is not None:  # finalized: the timeline can be drawn
            history = await self.history.events(space.space_id, until=space.ended_at)
        replay = self._replay(space, history)
        if replay.state == rt.REPLAY_STATE_FINALIZING:
            job = await self.jobs.get(space.space_id)
            if job is not None and job.state == FAILED:
                raise FailedPrecondition(
                    f"space {space.space_id!r} has no replay: {job.error}", reason=Reason.NO_AUDIO
                )
            replay.progress = job.progress if job else 0.0
        return pb.GetReplayResponse(replay=replay)

    @server_stream
    async def StreamReplay(self, request: pb.StreamReplayRequest, caller: Caller):
        space = await self._ready(request.space_id, caller, (request.room_version, request.room_token))
        if request.speed not in SPEEDS:
            raise InvalidArgument(
                f"speed must be 0 (unpaced), 1, 1.5 or 2, not {request.speed:g}",
                [FieldViolation("speed", "one of 0, 1, 1.5, 2")],
            )
        start = duration_field(request.start_at, "start_at") if request.HasField("start_at") else timedelta(0)
        if start < timedelta(0) or start >= max(space.duration, FRAME):
            raise InvalidArgument(
                f"start_at must be within the recording (0 to {space.duration.total_seconds():.3f} s)",
                [FieldViolation("start_at", "between 0 and the replay's duration")],
            )
        file = self._open(space.space_id, frames_key(space.space_id))
        await self.commands.by_caller(
            space.space_id, RecordListen(space.space_id), caller, "StreamReplay", request
        )
        try:
            index = FrameIndex(file)
            first = int(start / FRAME)
            began, speed = time.monotonic(), request.speed
            for n, packet in index.packets(first):
                at = FRAME * n
                if speed:
                    due = began + (at - FRAME * first).total_seconds() / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                response = pb.StreamReplayResponse(opus=packet)
                response.at.FromTimedelta(at)
                yield response
        finally:
            file.close()

    @server_stream
    async def DownloadReplay(self, request: pb.DownloadReplayRequest, caller: Caller):
        space = await self._ready(request.space_id, caller, (request.room_version, request.room_token))
        file = self._open(space.space_id, ogg_key(space.space_id))
        await self.commands.by_caller(
            space.space_id, RecordListen(space.space_id), caller, "DownloadReplay", request
        )
        try:
            total = file.seek(0, 2)
            file.seek(0)
            offset = 0
            while chunk := file.read(DOWNLOAD_CHUNK):
                yield pb.DownloadReplayResponse(chunk=chunk, offset=offset, total_size=total)
                offset += len(chunk)
        finally:
            file.close()

    def _open(self, space_id: str, key: str):
        try:
            return self.blobs.open(key)
        except FileNotFoundError as e:
            raise NotFound(f"the replay of space {space_id!r} is gone", reason=Reason.REPLAY_DELETED) from e

    # -- changing --------------------------------------------------------------------------

    @unary
    async def DeleteReplay(self, request: pb.DeleteReplayRequest, caller: Caller) -> pb.DeleteReplayResponse:
        # Decided on the replay stream, not on the catalog: a retry (same request_id) of a delete
        # the catalog has already seen still gets its first answer.
        space = await self._recorded(request.space_id, caller)
        await self.commands.by_caller(
            space.space_id, Delete(space.space_id, space.host_user_id), caller, "DeleteReplay", request
        )
        delete_files(self.blobs, space.space_id)
        return pb.DeleteReplayResponse()

    # -- time travel -----------------------------------------------------------------------

    @unary
    async def GetSpaceStateAt(
        self, request: pb.GetSpaceStateAtRequest, caller: Caller
    ) -> pb.GetSpaceStateAtResponse:
        space_id = require_id(request.space_id, "space_id")
        if not request.HasField("at"):
            raise InvalidArgument("at is required", [FieldViolation("at", "a moment to look at")])
        await reach_room(
            self.room_views,
            space_id,
            room_version=request.room_version,
            room_token=request.room_token,
            wait_seconds=self.view_wait_seconds,
            service="replay",
        )
        if not await self.history.known(space_id):
            raise NotFound(f"space {space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)
        await self._space(space_id, caller)
        at = timestamp_field(request.at, "at")
        state = state_at(await self.history.events(space_id, until=at), at)
        if not state.exists:
            raise FailedPrecondition(
                f"space {space_id!r} did not exist yet at {at.isoformat()}", reason=Reason.NOT_CREATED_YET
            )
        response = pb.GetSpaceStateAtResponse(
            space_id=space_id, title=state.title, status=state.status, listener_count=state.listener_count
        )
        for user_id in state.ordered_participants():
            member = state.member(user_id)
            response.participants.add(
                user_id=user_id,
                role=ROLE_NAMES.get(member.role, ""),
                muted=member.muted,
                hand_raised=member.hand_raised_at is not None,
                speaking=state.is_speaking(user_id),
            )
        if state.started_at is not None:
            response.since_start.FromTimedelta(at - state.started_at)
        return response
