"""A Space's summary, computed from its events alone: who came, who spoke, who asked.

Pure: give it the Space's room events (and presence events, if any) with the
times they occurred, in log order, and it returns the figures. Event time only,
so rebuilding from the log always gives the same report.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

SOURCES = {
    rev.JOIN_SOURCE_DIRECT: "direct",
    rev.JOIN_SOURCE_INVITE_LINK: "invite link",
    rev.JOIN_SOURCE_INVITED: "invited",
    rev.JOIN_SOURCE_HOST: "host",
}


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
    speaking_seconds: dict[str, float] = field(default_factory=dict)  # time each user held a speaking role
    listeners_over_time: list[tuple[datetime, int]] = field(default_factory=list)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None


def build(space_id: str, events: list[tuple[object, datetime]]) -> SpaceReport:
    report = SpaceReport(space_id)
    listeners: dict[str, datetime] = {}  # present listeners -> since when
    voices: dict[str, datetime] = {}  # host, co-hosts, speakers -> since when
    requested: dict[str, datetime] = {}
    waits: list[float] = []
    everyone: set[str] = set()
    sources: Counter[str] = Counter()
    last = None

    def listener_leaves(user: str, at: datetime) -> None:
        since = listeners.pop(user, None)
        if since is not None:
            report.listener_minutes += (at - since).total_seconds() / 60

    def voice_stops(user: str, at: datetime) -> None:
        since = voices.pop(user, None)
        if since is not None:
            report.speaking_seconds[user] = (
                report.speaking_seconds.get(user, 0.0) + (at - since).total_seconds()
            )

    for event, at in events:
        last = at
        match event:
            case rev.SpaceCreated():
                report.title, report.host_user_id = event.title, event.host_user_id
            case rev.SpaceStarted():
                report.started_at = at
            case rev.ParticipantJoined():
                sources[SOURCES.get(event.source, "other")] += 1
                if event.role in (rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER):
                    voices.setdefault(event.user_id, at)
                else:
                    listeners[event.user_id] = at
                    everyone.add(event.user_id)
            case rev.ParticipantLeft():
                listener_leaves(event.user_id, at)
                voice_stops(event.user_id, at)
                requested.pop(event.user_id, None)
            case rev.SpeakerAdded() | rev.CoHostAdded():
                listener_leaves(event.user_id, at)
                voices.setdefault(event.user_id, at)
            case rev.SpeakerRemoved() | rev.CoHostRemoved():
                voice_stops(event.user_id, at)
                listeners[event.user_id] = at
            case rev.SpeakRequested():
                report.speak_requests += 1
                requested[event.user_id] = at
            case rev.SpeakRequestApproved():
                report.speak_requests_approved += 1
                if event.user_id in requested:
                    waits.append((at - requested.pop(event.user_id)).total_seconds())
            case rev.SpeakRequestWithdrawn() | rev.SpeakRequestDenied():
                requested.pop(event.user_id, None)
            case rev.SpaceEnded():
                report.ended_at = at
                for user in list(listeners):
                    listener_leaves(user, at)
                for user in list(voices):
                    voice_stops(user, at)
        report.peak_listeners = max(report.peak_listeners, len(listeners))
        if not report.listeners_over_time or report.listeners_over_time[-1][1] != len(listeners):
            report.listeners_over_time.append((at, len(listeners)))
    if last is not None and report.ended_at is None:  # still live: count up to the last event
        for user in list(listeners):
            listener_leaves(user, last)
        for user in list(voices):
            voice_stops(user, last)
    report.unique_listeners = len(everyone)
    report.joins_by_source = dict(sorted(sources.items()))
    report.median_wait_seconds = statistics.median(waits) if waits else None
    return report


def plot(report: SpaceReport, path) -> None:
    """A PNG: listeners over time, and speaking time per speaker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if report.listeners_over_time:
        start = report.listeners_over_time[0][0]
        xs = [(at - start).total_seconds() / 60 for at, _ in report.listeners_over_time]
        left.step(xs, [n for _, n in report.listeners_over_time], where="post")
    left.set(title="Listeners over time", xlabel="minutes since the first event", ylabel="listeners")
    speakers = sorted(report.speaking_seconds.items(), key=lambda item: -item[1])
    right.barh([u for u, _ in speakers], [s / 60 for _, s in speakers])
    right.set(title="Speaking time", xlabel="minutes")
    figure.suptitle(f"{report.title or report.space_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
