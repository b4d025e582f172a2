"""Every report, across Spaces, for trust and safety's ListReports.

A durable view (`libs/projection/durable.py`): one row per report in
`moderation.reports_v1`, written in the same transaction as the log position it
reflects, so a restart resumes from there. Nothing is held in memory: ListReports
is one SQL query, filtered by Space, state, reason and time, newest first, a page
at a time. Every replica answers from the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from libs.domain.errors import FieldViolation, InvalidArgument
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS
from libs.grpckit.pagination import Page, from_micros, micros, next_page_token
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as ev
from podium.moderation.v1 import moderation_types_pb2 as mt


class ReportIndex:
    name = "moderation-report-index"
    version = 1
    topics = (MODERATION_EVENTS,)
    tables = ("reports_v1",)

    def __init__(self, pool: asyncpg.Pool, schema: str = "moderation"):
        self.pool = pool
        self.table = f"{schema}.reports_v1"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        reported: list[tuple] = []
        resolved: list[tuple] = []
        for event in events:
            e = event.payload
            if isinstance(e, ev.SpaceReported | ev.ParticipantReported):
                reported.append(
                    (
                        e.report_id,
                        e.space_id,
                        e.reporter_user_id,
                        getattr(e, "target_user_id", ""),
                        e.reason,
                        e.text,
                        occurred_at(event.envelope),
                    )
                )
            elif isinstance(e, ev.ReportResolved):
                resolved.append((e.report_id, e.resolution, e.resolver_user_id, occurred_at(event.envelope)))
        if reported:  # a report comes before its resolution in its Space's stream
            await conn.execute(
                f"""INSERT INTO {self.table} (report_id, space_id, reporter_user_id, target_user_id,
                        reason, text, reported_at, state)
                    SELECT *, {mt.REPORT_STATE_OPEN} FROM unnest($1::text[], $2::text[], $3::text[],
                        $4::text[], $5::int[], $6::text[], $7::timestamptz[])
                    ON CONFLICT (report_id) DO NOTHING""",
                *(list(column) for column in zip(*reported, strict=True)),
            )
        if resolved:
            await conn.executemany(
                f"""UPDATE {self.table} SET state = {mt.REPORT_STATE_RESOLVED}, resolution = $2,
                        resolved_by_user_id = $3, resolved_at = $4
                    WHERE report_id = $1""",
                resolved,
            )

    async def query(
        self, space_id: str, state: int, reason: int, since_seconds: int, page: Page
    ) -> tuple[list[mt.Report], str]:
        """A page of matching reports, newest first, and the next page's token."""
        after_at, after_id = _after(page)
        rows = await self.pool.fetch(
            f"""SELECT * FROM {self.table}
                WHERE ($1 = '' OR space_id = $1) AND ($2 = 0 OR state = $2) AND ($3 = 0 OR reason = $3)
                  AND reported_at >= $4
                  AND ($5::timestamptz IS NULL OR (reported_at, report_id) < ($5, $6))
                ORDER BY reported_at DESC, report_id DESC
                LIMIT $7""",
            space_id,
            state,
            reason,
            datetime.fromtimestamp(since_seconds, UTC),
            after_at,
            after_id,
            page.size + 1,
        )
        reports = [_report(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        last = rows[page.size - 1] if more else None
        key = (micros(last["reported_at"]), last["report_id"]) if last is not None else ()
        return reports, next_page_token(page, key, more=more)


def _after(page: Page) -> tuple[datetime | None, str]:
    """Where the page starts: after the (reported_at, report_id) of the last report returned."""
    if page.after is None:
        return None, ""
    match page.after:
        case (int(at), str(report_id)):
            return from_micros(at), report_id
    raise InvalidArgument(
        "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
    )


def _report(row: asyncpg.Record) -> mt.Report:
    report = mt.Report(
        report_id=row["report_id"],
        space_id=row["space_id"],
        reporter_user_id=row["reporter_user_id"],
        target_user_id=row["target_user_id"],
        reason=row["reason"],
        text=row["text"],
        state=row["state"],
        resolution=row["resolution"],
        resolved_by_user_id=row["resolved_by_user_id"],
    )
    report.reported_at.FromDatetime(row["reported_at"])
    if row["resolved_at"] is not None:
        report.resolved_at.FromDatetime(row["resolved_at"])
    return report
