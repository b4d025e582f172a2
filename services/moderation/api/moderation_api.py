"""The ModerationService servicer: requests become moderation commands; queries read views."""

from __future__ import annotations

from libs.application.read_your_writes import reach_room
from libs.domain.errors import (
    NotFound,
    PermissionDenied,
    Unavailable,
    Validator,
)
from libs.domain.reasons import Reason
from libs.events.ids import new_id
from libs.grpckit.handlers import Authenticator, Caller, unary
from libs.grpckit.pagination import paginate, parse_page
from libs.grpckit.rate_limits import REPORT, RateLimiter
from libs.grpckit.validation import optional_id, require_id, timestamp_field
from libs.projection.runner import ProjectionRunner
from podium.moderation.v1 import moderation_service_pb2 as pb
from podium.moderation.v1 import moderation_service_pb2_grpc
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.application.moderation_commands import ModerationCommands
from services.moderation.domain import commands as cmd
from services.moderation.domain.decide import TRUST_AND_SAFETY
from services.moderation.projections.report_index import ReportIndex
from services.moderation.projections.room_roles import RoomRoles


class ModerationApi(moderation_service_pb2_grpc.ModerationServiceServicer):
    def __init__(
        self,
        authenticator: Authenticator,
        commands: ModerationCommands,
        roles: RoomRoles,
        reports: ReportIndex,
        limits: RateLimiter | None = None,
        room_view: ProjectionRunner | None = None,
        view_wait_seconds: float = 2.0,
    ):
        self.authenticator = authenticator
        self.commands = commands
        self.room = roles
        self.reports = reports
        self.limits = limits or RateLimiter({})
        self.room_view = room_view  # the runner behind `roles`: how far it has read each Space
        self.view_wait_seconds = view_wait_seconds

    async def _roles(self, space_id: str, seen, actor: str, target: str = "") -> cmd.Roles:
        """The actor's and target's roles in the Space, once this replica's view of the room has
        reached the `room_version` and `room_token` of the request `seen` (what the caller saw in a
        room response; None: the view as it is): a refusal never rests on an older view than the
        caller's. NOT_FOUND for a Space the view does not know."""
        views = (self.room_view,) if self.room_view is not None else ()
        await reach_room(
            views,
            space_id,
            room_version=seen.room_version if seen is not None else 0,
            room_token=seen.room_token if seen is not None else "",
            wait_seconds=self.view_wait_seconds,
            service="moderation",
        )
        roles = await self.room.roles(space_id, actor, target)
        if not roles.host_user_id:
            raise NotFound(f"space {space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)
        return roles

    async def _on_space(self, space_id, command, caller, request, method, response_type, respond=None):
        return await self.commands.on_space(
            space_id,
            command,
            caller,
            request,
            method,
            respond or (lambda _s, _e: response_type()),
            response_type,
        )

    @unary
    async def MuteParticipant(
        self, request: pb.MuteParticipantRequest, caller: Caller
    ) -> pb.MuteParticipantResponse:
        space_id, user_id = require_id(request.space_id, "space_id"), require_id(request.user_id, "user_id")
        roles = await self._roles(space_id, request, caller.user_id, user_id)
        command = cmd.MuteParticipant(space_id, user_id, roles)
        return await self._on_space(
            space_id, command, caller, request, "MuteParticipant", pb.MuteParticipantResponse,
            lambda state, _e: pb.MuteParticipantResponse(kind=state.mutes.get(user_id, mt.MUTE_KIND_UNSPECIFIED)),
        )  # fmt: skip

    @unary
    async def UnmuteParticipant(
        self, request: pb.UnmuteParticipantRequest, caller: Caller
    ) -> pb.UnmuteParticipantResponse:
        space_id, user_id = require_id(request.space_id, "space_id"), require_id(request.user_id, "user_id")
        roles = await self._roles(space_id, request, caller.user_id, user_id)
        command = cmd.UnmuteParticipant(space_id, user_id, roles)
        return await self._on_space(
            space_id, command, caller, request, "UnmuteParticipant", pb.UnmuteParticipantResponse
        )

    @unary
    async def RemoveParticipant(
        self, request: pb.RemoveParticipantRequest, caller: Caller
    ) -> pb.RemoveParticipantResponse:
        space_id, user_id = require_id(request.space_id, "space_id"), require_id(request.user_id, "user_id")
        roles = await self._roles(space_id, request, caller.user_id, user_id)
        command = cmd.RemoveParticipant(space_id, user_id, request.reason, roles)
        response = await self._on_space(
            space_id, command, caller, request, "RemoveParticipant", pb.RemoveParticipantResponse
        )
        await self._until_the_room_bars(space_id, user_id)
        return response

    async def _until_the_room_bars(self, space_id: str, user_id: str) -> None:
        """A removal is answered once this replica's view of the room shows the room's bar (ADR
        0014): the room records it where joins are decided, so no join answered after this one gets
        the user in. UNAVAILABLE `VIEW_BEHIND` when that takes longer than the view wait: the
        removal is recorded and will apply, and a retry with the same request id waits again."""
        if self.room_view is None:
            return
        if not await self.room_view.until(
            lambda: self.room.room_bars(space_id, user_id), self.view_wait_seconds
        ):
            raise Unavailable(
                f"the removal of {user_id!r} is recorded, but the room has not yet barred them from "
                f"space {space_id!r}; retry with the same request_id",
                reason=Reason.VIEW_BEHIND,
                retry_after_seconds=0.2,
            )

    @unary
    async def BlockUser(self, request: pb.BlockUserRequest, caller: Caller) -> pb.BlockUserResponse:
        return await self.commands.on_blocks(
            cmd.BlockUser(request.user_id), caller, request, "BlockUser", pb.BlockUserResponse
        )

    @unary
    async def UnblockUser(self, request: pb.UnblockUserRequest, caller: Caller) -> pb.UnblockUserResponse:
        return await self.commands.on_blocks(
            cmd.UnblockUser(request.user_id), caller, request, "UnblockUser", pb.UnblockUserResponse
        )

    @unary
    async def ListBlockedUsers(
        self, request: pb.ListBlockedUsersRequest, caller: Caller
    ) -> pb.ListBlockedUsersResponse:
        page = parse_page(request.page_size, request.page_token, caller.user_id)
        blocked = sorted((await self.commands.block_list(caller.user_id)).blocked)
        users, token = paginate(blocked, page, lambda user_id: (user_id,))
        return pb.ListBlockedUsersResponse(user_ids=users, next_page_token=token)

    @unary
    async def ReportSpace(self, request: pb.ReportSpaceRequest, caller: Caller) -> pb.ReportSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        roles = await self._roles(space_id, request, caller.user_id)
        with self.limits.charge(REPORT, caller.user_id):
            report_id = new_id()
            command = cmd.ReportSpace(space_id, report_id, request.reason, request.text, roles)
            return await self._on_space(
                space_id, command, caller, request, "ReportSpace", pb.ReportSpaceResponse,
                lambda _s, _e: pb.ReportSpaceResponse(report_id=report_id),
            )  # fmt: skip

    @unary
    async def ReportParticipant(
        self, request: pb.ReportParticipantRequest, caller: Caller
    ) -> pb.ReportParticipantResponse:
        space_id, user_id = require_id(request.space_id, "space_id"), require_id(request.user_id, "user_id")
        roles = await self._roles(space_id, request, caller.user_id, user_id)
        with self.limits.charge(REPORT, caller.user_id):
            report_id = new_id()
            command = cmd.ReportParticipant(space_id, report_id, user_id, request.reason, request.text, roles)

            # Whether this report tips the speaker into an automatic mute is decided afterwards, by
            # the report-window stream (application/report_windows.py).
            return await self._on_space(
                space_id, command, caller, request, "ReportParticipant", pb.ReportParticipantResponse,
                lambda _s, _e: pb.ReportParticipantResponse(report_id=report_id),
            )  # fmt: skip

    def _require_trust_and_safety(self, caller: Caller) -> None:
        if TRUST_AND_SAFETY not in caller.identity.roles:
            raise PermissionDenied(
                "this needs the trust-and-safety role in your token", reason=Reason.NOT_TRUST_AND_SAFETY
            )

    @unary
    async def ListReports(self, request: pb.ListReportsRequest, caller: Caller) -> pb.ListReportsResponse:
        self._require_trust_and_safety(caller)
        check = Validator()
        check.check(
            request.state in mt.ReportState.values(), "state", f"{request.state} is not a ReportState"
        )
        check.check(
            request.reason in mt.ReportReason.values(), "reason", f"{request.reason} is not a ReportReason"
        )
        check.raise_if_any("ListReports has invalid filters")
        space_id = optional_id(request.space_id, "space_id")
        if request.HasField("since"):
            timestamp_field(request.since, "since")
        since = request.since.seconds if request.HasField("since") else 0
        query = [space_id, request.state, request.reason, since]
        page = parse_page(request.page_size, request.page_token, query)
        reports, token = await self.reports.query(space_id, request.state, request.reason, since, page)
        return pb.ListReportsResponse(reports=reports, next_page_token=token)

    @unary
    async def ResolveReport(
        self, request: pb.ResolveReportRequest, caller: Caller
    ) -> pb.ResolveReportResponse:
        self._require_trust_and_safety(caller)
        space_id = require_id(request.space_id, "space_id")
        await self._roles(space_id, None, caller.user_id)
        report_id = require_id(request.report_id, "report_id")
        command = cmd.ResolveReport(space_id, report_id, request.resolution, request.note)

        def respond(state, _events) -> pb.ResolveReportResponse:
            record = state.reports[report_id]
            report = mt.Report(
                report_id=record.report_id,
                space_id=space_id,
                reporter_user_id=record.reporter_user_id,
                target_user_id=record.target_user_id,
                reason=record.reason,
                text=record.text,
                state=mt.REPORT_STATE_RESOLVED,
                resolution=record.resolution,
                resolved_by_user_id=record.resolver_user_id,
            )
            report.reported_at.FromDatetime(record.reported_at)
            if record.resolved_at:
                report.resolved_at.FromDatetime(record.resolved_at)
            return pb.ResolveReportResponse(report=report)

        return await self._on_space(
            space_id, command, caller, request, "ResolveReport", pb.ResolveReportResponse, respond
        )

    @unary
    async def GetModerationLog(
        self, request: pb.GetModerationLogRequest, caller: Caller
    ) -> pb.GetModerationLogResponse:
        space_id = require_id(request.space_id, "space_id")
        roles = await self._roles(space_id, None, caller.user_id)
        manages = roles.actor in (rt.ROLE_HOST, rt.ROLE_CO_HOST) or roles.host_user_id == caller.user_id
        if TRUST_AND_SAFETY not in caller.identity.roles and not manages:
            raise PermissionDenied(
                "only the host, co-hosts and trust and safety can read the moderation log",
                reason=Reason.NOT_HOST_OR_CO_HOST,
            )
        page = parse_page(request.page_size, request.page_token, space_id)
        actions = []  # in the order of the Space's moderation stream: its version is the key
        for recorded in await self.commands.space_log(space_id):
            e = recorded.payload
            action = mt.ModerationAction(
                event_type=recorded.envelope.event_type,
                actor_user_id=recorded.envelope.actor_user_id,
                target_user_id=getattr(e, "target_user_id", "") or getattr(e, "user_id", ""),
                reason=_reason_of(e),
            )
            action.occurred_at.CopyFrom(recorded.envelope.occurred_at)
            actions.append((recorded.version, action))
        chunk, token = paginate(actions, page, lambda item: (item[0],))
        chunk = [action for _, action in chunk]
        return pb.GetModerationLogResponse(actions=chunk, next_page_token=token)


def _reason_of(event) -> str:
    if hasattr(event, "kind"):
        why = ""
        if event.kind == mt.MUTE_KIND_AUTO and event.report_ids:
            why = (
                f": {event.distinct_reporters} people reported them within {event.window_seconds} s"
                f" (reports {', '.join(event.report_ids)})"
            )
        return mt.MuteKind.Name(event.kind) + why
    if hasattr(event, "lifted"):
        return "lifted " + mt.MuteKind.Name(event.lifted)
    if hasattr(event, "resolution"):
        return mt.Resolution.Name(event.resolution) + (f": {event.note}" if event.note else "")
    if hasattr(event, "reason") and isinstance(event.reason, int):
        return mt.ReportReason.Name(event.reason) + (f": {event.text}" if getattr(event, "text", "") else "")
    return getattr(event, "reason", "")
