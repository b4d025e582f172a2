"""What each moderation event means for a Space's moderation state and a host's block list."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from google.protobuf.message import Message

from podium.moderation.v1 import moderation_events_pb2 as ev
from services.moderation.domain.state import BlockList, ReportRecord, SpaceModeration


def evolve_space(state: SpaceModeration, event: Message, at: datetime) -> SpaceModeration:
    state = replace(
        state, version=state.version + 1, space_id=state.space_id or getattr(event, "space_id", "")
    )
    match event:
        case ev.ParticipantMuted():
            causes = state.auto_mute_causes | frozenset(event.report_ids)
            return replace(state, mutes={**state.mutes, event.user_id: event.kind}, auto_mute_causes=causes)
        case ev.ParticipantUnmuted():
            return replace(state, mutes={u: k for u, k in state.mutes.items() if u != event.user_id})
        case ev.ParticipantRemoved():
            mutes = {u: k for u, k in state.mutes.items() if u != event.user_id}
            return replace(state, removed=state.removed | {event.user_id}, mutes=mutes)
        case ev.SpaceReported() | ev.ParticipantReported():
            report = ReportRecord(
                report_id=event.report_id,
                reporter_user_id=event.reporter_user_id,
                target_user_id=getattr(event, "target_user_id", ""),
                reason=event.reason,
                text=event.text,
                reported_at=at,
            )
            return replace(state, reports={**state.reports, event.report_id: report})
        case ev.ReportResolved():
            report = state.reports.get(event.report_id)
            if report is None:
                return state
            resolved = replace(
                report, resolution=event.resolution, resolver_user_id=event.resolver_user_id, resolved_at=at
            )
            return replace(state, reports={**state.reports, event.report_id: resolved})
    return state


def evolve_blocks(state: BlockList, event: Message, at: datetime) -> BlockList:
    state = replace(state, version=state.version + 1, host_user_id=state.host_user_id or event.host_user_id)
    match event:
        case ev.UserBlocked():
            return replace(state, blocked=state.blocked | {event.user_id})
        case ev.UserUnblocked():
            return replace(state, blocked=state.blocked - {event.user_id})
    return state
