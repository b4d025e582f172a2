"""A Space's summary for `podium report`, computed from its events alone: who came, who spoke, who asked.

Pure: give it the Space's room events with the times they occurred, each once
in log order, every stream of the Space's (its own and its listener shards)
in its version order, as `libs.events.tail.space_history` reads them (and its
media events, for talking time), and it returns the figures. They are analytics' own figures, folded by
the same code (`libs.analytics.space_figures`), so the report and the
published SpaceStats never disagree. Event time only, so rebuilding from the
log always gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from libs.analytics.space_figures import apply_room, apply_talking, empty, snapshot
from libs.extras import optional


@dataclass
class SpaceReport:
    space_id: str
    title: str = ""
    host_user_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    peak_listeners: int = 0
    unique_listeners: int = 0
    listener_minutes: float = 0.0
    joins_by_source: dict[str, int] = field(default_factory=dict)
    speak_requests: int = 0
    speak_requests_approved: int = 0
    median_wait_seconds: float | None = None
    speaking_role_seconds: dict[str, float] = field(default_factory=dict)  # host, co-host or speaker
    talking_seconds: dict[str, float] = field(default_factory=dict)  # actually talking (the media relay)
    listeners_over_time: list[tuple[datetime, int]] = field(default_factory=list)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None


def build(
    space_id: str, events: list[tuple[object, datetime]], media_events: list[tuple[object, datetime]] = ()
) -> SpaceReport:
    """The report from the Space's room events and, for talking time, its media events (each list in
    log order, each event once)."""
    report = SpaceReport(space_id)
    stats, members = empty(space_id, 60), {}
    for version, (event, _) in enumerate(media_events, start=1):
        apply_talking(stats, "media", version, event)
    last = None
    # Each event once already: a position serves as the version apply_room drops repeats by.
    for position, (event, at) in enumerate(events, start=1):
        apply_room(stats, members, event, at.timestamp(), position)
        last = at
        if not report.listeners_over_time or report.listeners_over_time[-1][1] != stats["listeners"]:
            report.listeners_over_time.append((at, stats["listeners"]))
    if last is None:
        return report
    ended = stats["ended_at"] is not None
    # Still live: counted up to the last event.
    figures = snapshot(stats, stats["ended_at"] if ended else last.timestamp(), final=ended)
    report.title, report.host_user_id = figures.title, figures.host_user_id
    report.started_at = _time(stats["started_at"])
    report.ended_at = _time(stats["ended_at"])
    report.peak_listeners, report.unique_listeners = figures.peak_listeners, figures.unique_listeners
    report.listener_minutes = figures.listener_minutes
    report.joins_by_source = dict(sorted(figures.joins_by_source.items()))
    report.speak_requests, report.speak_requests_approved = (
        figures.speak_requests,
        figures.speak_requests_approved,
    )
    if figures.HasField("median_wait_seconds"):
        report.median_wait_seconds = figures.median_wait_seconds
    report.speaking_role_seconds = dict(figures.speaking_role_seconds)
    report.talking_seconds = dict(figures.talking_seconds)
    return report


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def plot(report: SpaceReport, path) -> None:
    """A PNG: listeners over time, and per person the time in a speaking role beside the time talking."""
    matplotlib = optional("matplotlib", "analyst", "Plotting a report (--png)")
    matplotlib.use("Agg")
    plt = optional("matplotlib.pyplot", "analyst", "Plotting a report (--png)")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if report.listeners_over_time:
        start = report.listeners_over_time[0][0]
        xs = [(at - start).total_seconds() / 60 for at, _ in report.listeners_over_time]
        left.step(xs, [n for _, n in report.listeners_over_time], where="post")
    left.set(title="Listeners over time", xlabel="minutes since the first event", ylabel="listeners")
    people = sorted(report.speaking_role_seconds, key=lambda u: -report.speaking_role_seconds[u])
    rows = range(len(people))
    right.barh(
        [r + 0.2 for r in rows],
        [report.speaking_role_seconds[u] / 60 for u in people],
        0.4,
        label="in a speaking role",
    )
    right.barh(
        [r - 0.2 for r in rows], [report.talking_seconds.get(u, 0) / 60 for u in people], 0.4, label="talking"
    )
    right.set_yticks(list(rows), people)
    right.set(title="Speaking role and talking time", xlabel="minutes")
    right.legend()
    figure.suptitle(f"{report.title or report.space_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
