"""Moderation's rules: who may silence, remove, block and report whom.

Roles are the room service's (host, co-host, speaker, listener), passed in
by the application from its view of the room's events. Trust and safety is a
role in the caller's token.
"""

from __future__ import annotations

from functools import partial

from google.protobuf.message import Message

from libs.domain.decider import SYSTEM_CLAIM, Context, Decider
from libs.domain.errors import FailedPrecondition, NotFound, PermissionDenied, Validator
from libs.domain.identifiers import id_problem
from libs.domain.reasons import Reason
from podium.moderation.v1 import moderation_events_pb2 as ev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain import commands as c
from services.moderation.domain.evolve import evolve_blocks, evolve_space
from services.moderation.domain.limits import ModerationLimits
from services.moderation.domain.state import BLOCKS_INITIAL, SPACE_INITIAL, BlockList, SpaceModeration

TRUST_AND_SAFETY = "trust-and-safety"
MANAGERS = (rt.ROLE_HOST, rt.ROLE_CO_HOST)
VOICES = (rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER)
HARD_MUTES = (mt.MUTE_KIND_HOST, mt.MUTE_KIND_AUTO)
REASONS = [v for v in mt.ReportReason.values() if v != mt.REPORT_REASON_UNSPECIFIED]


def _require_manager(roles: c.Roles, action: str) -> None:
    if roles.actor not in MANAGERS:
        raise PermissionDenied(f"only the host and co-hosts can {action}", reason=Reason.NOT_HOST_OR_CO_HOST)


def _mute(
    cmd: c.MuteParticipant, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    self_mute = cmd.user_id == ctx.actor_user_id
    if not self_mute:
        _require_manager(cmd.roles, "mute others")
    target_role = cmd.roles.actor if self_mute else cmd.roles.target
    if target_role not in VOICES:
        raise FailedPrecondition(
            f"user {cmd.user_id!r} is not speaking in this Space", reason=Reason.USER_NOT_A_SPEAKER
        )
    if not self_mute and target_role == rt.ROLE_HOST:
        raise PermissionDenied("nobody can mute the host", reason=Reason.CANNOT_MUTE_HOST)
    kind = mt.MUTE_KIND_SELF if self_mute else mt.MUTE_KIND_HOST
    current = s.mutes.get(cmd.user_id)
    if current == kind or (kind == mt.MUTE_KIND_SELF and current in HARD_MUTES):
        return []
    return [ev.ParticipantMuted(space_id=cmd.space_id, user_id=cmd.user_id, kind=kind)]


def _unmute(
    cmd: c.UnmuteParticipant, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    current = s.mutes.get(cmd.user_id)
    if current is None:
        return []
    if cmd.roles.actor not in MANAGERS:
        if cmd.user_id != ctx.actor_user_id:
            raise PermissionDenied(
                "only the host and co-hosts can unmute others", reason=Reason.NOT_HOST_OR_CO_HOST
            )
        if current in HARD_MUTES:
            raise FailedPrecondition(
                "a host or co-host muted you; only they can lift it", reason=Reason.HARD_MUTED
            )
    return [ev.ParticipantUnmuted(space_id=cmd.space_id, user_id=cmd.user_id, lifted=current)]


def _remove(
    cmd: c.RemoveParticipant, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    _require_manager(cmd.roles, "remove participants")
    if cmd.user_id == cmd.roles.host_user_id or cmd.roles.target == rt.ROLE_HOST:
        raise PermissionDenied("the host cannot be removed", reason=Reason.CANNOT_REMOVE_HOST)
    if cmd.user_id == ctx.actor_user_id:
        raise FailedPrecondition("to leave, use LeaveSpace", reason=Reason.CANNOT_REMOVE_SELF)
    check = Validator()
    check.check(
        len(cmd.reason) <= limits.max_reason_text, "reason", f"at most {limits.max_reason_text} characters"
    )
    check.raise_if_any()
    if cmd.user_id in s.removed:
        return []
    return [ev.ParticipantRemoved(space_id=cmd.space_id, user_id=cmd.user_id, reason=cmd.reason)]


def _check_report(reason: int, text: str, limits: ModerationLimits) -> None:
    check = Validator()
    check.check(reason in REPORT_REASONS, "reason", "choose a ReportReason")
    check.check(len(text) <= limits.max_report_text, "text", f"at most {limits.max_report_text} characters")
    check.raise_if_any("the report has invalid fields")


REPORT_REASONS = frozenset(REASONS)


def _report_space(
    cmd: c.ReportSpace, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    if cmd.roles.actor == rt.ROLE_UNSPECIFIED:
        raise PermissionDenied("only participants can report a Space", reason=Reason.NOT_A_PARTICIPANT)
    _check_report(cmd.reason, cmd.text, limits)
    if cmd.report_id in s.reports:
        return []
    return [
        ev.SpaceReported(
            report_id=cmd.report_id,
            space_id=cmd.space_id,
            reason=cmd.reason,
            text=cmd.text,
            reporter_user_id=ctx.actor_user_id,
        )
    ]


def _report_participant(
    cmd: c.ReportParticipant, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    if cmd.roles.actor == rt.ROLE_UNSPECIFIED:
        raise PermissionDenied("only participants can report someone", reason=Reason.NOT_A_PARTICIPANT)
    if cmd.user_id == ctx.actor_user_id:
        raise FailedPrecondition("you cannot report yourself", reason=Reason.SELF_REPORT)
    if cmd.roles.target == rt.ROLE_UNSPECIFIED and cmd.user_id not in s.removed:
        raise FailedPrecondition(
            f"user {cmd.user_id!r} is not in this Space", reason=Reason.USER_NOT_A_PARTICIPANT
        )
    _check_report(cmd.reason, cmd.text, limits)
    if cmd.report_id in s.reports:
        return []
    return [
        ev.ParticipantReported(
            report_id=cmd.report_id,
            space_id=cmd.space_id,
            target_user_id=cmd.user_id,
            reason=cmd.reason,
            text=cmd.text,
            reporter_user_id=ctx.actor_user_id,
        )
    ]


def _auto_mute(cmd: c.AutoMute, s: SpaceModeration, ctx: Context, limits: ModerationLimits) -> list[Message]:
    """Mutes a speaker pending review when the report-window stream says enough people reported them.

    The stream only detects; this checks the claim against the Space's own record, so a late,
    repeated or replayed trigger changes nothing: the reports must exist, be open, be about this
    speaker, come from enough distinct users within the window, be recent, and not have caused an
    automatic mute before (a mute a host lifted after review is not re-imposed by the same reports).
    """
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied("automatic mutes are issued by the service", reason=Reason.NOT_SYSTEM)
    if cmd.roles.target not in (rt.ROLE_CO_HOST, rt.ROLE_SPEAKER) or s.mutes.get(cmd.user_id) in HARD_MUTES:
        return []
    reports = [s.reports[r] for r in cmd.report_ids if r in s.reports and r not in s.auto_mute_causes]
    reports = [r for r in reports if r.is_open and r.target_user_id == cmd.user_id]
    if not reports:
        return []
    newest = max(r.reported_at for r in reports)
    if ctx.now - newest > limits.auto_mute_window:
        return []  # stale: a replay of old reports, not a pile-on happening now
    recent = [r for r in reports if newest - r.reported_at <= limits.auto_mute_window]
    by_reporter = {r.reporter_user_id: r.report_id for r in recent}
    if len(by_reporter) < limits.auto_mute_reports:
        return []
    return [
        ev.ParticipantMuted(
            space_id=cmd.space_id,
            user_id=cmd.user_id,
            kind=mt.MUTE_KIND_AUTO,
            report_ids=sorted(by_reporter.values()),
            distinct_reporters=len(by_reporter),
            window_seconds=int(limits.auto_mute_window.total_seconds()),
        )
    ]


def _resolve(
    cmd: c.ResolveReport, s: SpaceModeration, ctx: Context, limits: ModerationLimits
) -> list[Message]:
    if TRUST_AND_SAFETY not in ctx.claims:
        raise PermissionDenied(
            "only trust and safety can resolve reports", reason=Reason.NOT_TRUST_AND_SAFETY
        )
    report = s.reports.get(cmd.report_id)
    if report is None:
        raise NotFound(
            f"report {cmd.report_id!r} does not exist in this Space", reason=Reason.REPORT_NOT_FOUND
        )
    check = Validator()
    check.check(
        cmd.resolution in (mt.RESOLUTION_NO_ACTION, mt.RESOLUTION_ACTION_TAKEN),
        "resolution",
        "choose a Resolution",
    )
    check.check(
        len(cmd.note) <= limits.max_report_text, "note", f"at most {limits.max_report_text} characters"
    )
    check.raise_if_any()
    if not report.is_open:
        if report.resolution == cmd.resolution:
            return []
        raise FailedPrecondition(
            "the report was already resolved differently", reason=Reason.ALREADY_RESOLVED
        )
    return [
        ev.ReportResolved(
            report_id=cmd.report_id,
            space_id=cmd.space_id,
            resolution=cmd.resolution,
            note=cmd.note,
            resolver_user_id=ctx.actor_user_id,
        )
    ]


_SPACE_HANDLERS = {
    c.MuteParticipant: _mute,
    c.UnmuteParticipant: _unmute,
    c.RemoveParticipant: _remove,
    c.ReportSpace: _report_space,
    c.ReportParticipant: _report_participant,
    c.ResolveReport: _resolve,
    c.AutoMute: _auto_mute,
}


def decide_space(
    command, state: SpaceModeration, ctx: Context, limits: ModerationLimits = ModerationLimits()
):
    return _SPACE_HANDLERS[type(command)](command, state, ctx, limits)


def decide_blocks(command, state: BlockList, ctx: Context) -> list[Message]:
    if command.user_id == ctx.actor_user_id:
        raise FailedPrecondition("you cannot block yourself", reason=Reason.SELF_BLOCK)
    check = Validator()
    check.check(
        id_problem(command.user_id.strip()) is None, "user_id", "a user id, at most 128 printable characters"
    )
    check.raise_if_any()
    blocked = command.user_id in state.blocked
    if isinstance(command, c.BlockUser):
        return [] if blocked else [ev.UserBlocked(host_user_id=ctx.actor_user_id, user_id=command.user_id)]
    return [ev.UserUnblocked(host_user_id=ctx.actor_user_id, user_id=command.user_id)] if blocked else []


def space_decider(limits: ModerationLimits = ModerationLimits()) -> Decider:
    return Decider(partial(decide_space, limits=limits), evolve_space, SPACE_INITIAL)


BLOCKS_DECIDER = Decider(decide_blocks, evolve_blocks, BLOCKS_INITIAL)
