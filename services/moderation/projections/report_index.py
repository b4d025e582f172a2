"""Every report, across Spaces, for trust and safety's ListReports."""

from __future__ import annotations

from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as ev
from podium.moderation.v1 import moderation_types_pb2 as mt


class ReportIndex:
    name = "moderation-report-index"
    topics = (MODERATION_EVENTS,)

    def __init__(self) -> None:
        self.reports: dict[str, mt.Report] = {}  # arrival order

    def apply(self, event: ConsumedEvent) -> None:
        e = event.payload
        if isinstance(e, ev.SpaceReported | ev.ParticipantReported):
            report = mt.Report(
                report_id=e.report_id,
                space_id=e.space_id,
                reporter_user_id=e.reporter_user_id,
                target_user_id=getattr(e, "target_user_id", ""),
                reason=e.reason,
                text=e.text,
                state=mt.REPORT_STATE_OPEN,
            )
            report.reported_at.CopyFrom(event.envelope.occurred_at)
            self.reports.setdefault(e.report_id, report)
        elif isinstance(e, ev.ReportResolved) and e.report_id in self.reports:
            report = self.reports[e.report_id]
            report.state = mt.REPORT_STATE_RESOLVED
            report.resolution = e.resolution
            report.resolved_by_user_id = e.resolver_user_id
            report.resolved_at.FromDatetime(occurred_at(event.envelope))

    def query(self, space_id: str, state: int, reason: int, since_seconds: int) -> list[mt.Report]:
        """Matching reports, newest first."""
        found = [
            r
            for r in self.reports.values()
            if (not space_id or r.space_id == space_id)
            and (not state or r.state == state)
            and (not reason or r.reason == reason)
            and r.reported_at.seconds >= since_seconds
        ]
        found.reverse()
        return found
