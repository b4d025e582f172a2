"""Prometheus metrics, served over HTTP on `PODIUM_METRICS_PORT` by every service.

The names a platform team alerts on (docs/operations.md lists the alerts):

    podium_grpc_requests_total{method, code}       calls handled, by final status
    podium_grpc_request_seconds{method}            latency histogram
    podium_command_conflicts_total{topic}          appends that lost a race for their stream's next
                                                   version (another replica wrote first) and were
                                                   decided again
    podium_outbox_backlog{schema}                  events committed, not yet on the broker
    podium_outbox_published_total{schema}          events the relay published
    podium_idempotency_purged_total{schema}        stored responses deleted after the retention
    podium_projection_lag_records{projection}      records on the broker not yet applied
    podium_projection_caught_up{projection}        1 once the view has caught up
    podium_view_cached_spaces{view}                Spaces a view cache holds in memory
    podium_media_frames_total{direction}           relay frames: in, out, dropped, refused
    podium_presence_degraded                       1 while presence times nobody out (behind or silent input)
    podium_live_spaces                             live Spaces (room)
    podium_space_participants{role}                participants of live Spaces, by role (room)
    podium_webhook_attempts_total{outcome}         delivery attempts: delivered, failed (retried later),
                                                   dead_lettered (webhooks)
    podium_webhook_event_to_post_seconds           from an event to its delivery's first POST (webhooks)
    podium_webhook_events_too_old_total            events older than the retention when read: not delivered
    podium_dead_letters_total{consumer}            records a consumer sent to the dead-letter topic
    podium_gateway_frames_total{path}              20 ms frames the gateway sent or published: passthrough
                                                   (the relay's Opus as it is), mixed (decoded, summed,
                                                   encoded), encoded (a browser's mic, to Publish),
                                                   silence, dropped_listener, dropped_uplink (gateway)
    podium_gateway_frame_age_seconds               frame capture (speaker's gateway) → received on Subscribe (gateway)
    podium_gateway_streams{kind}                   WebRTC streams held: listen, speak (gateway)

Most series describe the process that exports them, so dashboards and alerts sum them over
replicas. The room's census (`CLUSTER_WIDE`) does not: every room replica reads the same
directory in PostgreSQL and reports the same whole-cluster figure, so it is aggregated with
max(), never sum() (deploy/check/monitoring.py fails a rule or dashboard that sums it).
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

COMMANDS = Counter(
    "podium_grpc_requests", "gRPC calls handled, by method and final status code.", ["method", "code"]
)
COMMAND_SECONDS = Histogram(
    "podium_grpc_request_seconds",
    "Time to handle a gRPC call (for streams: until the stream ends).",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
EVICTION_SECONDS = Histogram(
    "podium_room_eviction_seconds",
    "From the event that disqualified a participant (moderation's removal, or the Space turning "
    "invite-only) to the room recording them out: the published eviction bound.",
    ["cause"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def observe_eviction(cause: str, since: float, participants: int = 1) -> None:
    """`participants` taken out for `cause`, the disqualifying event having occurred at `since`
    (epoch seconds): one observation each, of the time from then to now."""
    took = max(0.0, time.time() - since)
    observe = EVICTION_SECONDS.labels(cause).observe
    for _ in range(participants):
        observe(took)


COMMAND_CONFLICTS = Counter(
    "podium_command_conflicts",
    "Appends that found their stream moved on (another replica wrote first) and were decided again.",
    ["topic"],
)
COMMANDS_ABANDONED = Counter(
    "podium_commands_abandoned",
    "Commands dropped before they were decided because their caller gave up (the call was "
    "cancelled: its deadline passed, or the client went away); a retry decides them afresh.",
    ["topic"],
)
OUTBOX_BACKLOG = Gauge(
    "podium_outbox_backlog", "Events committed but not yet published to the broker.", ["schema"]
)
OUTBOX_PUBLISHED = Counter("podium_outbox_published", "Events the outbox relay published.", ["schema"])
IDEMPOTENCY_PURGED = Counter(
    "podium_idempotency_purged",
    "Stored responses to request_ids deleted because they outlived the retention.",
    ["schema"],
)
PROJECTION_LAG = Gauge(
    "podium_projection_lag_records",
    "Records on the broker that the projection has not applied.",
    ["projection"],
)
PROJECTION_UNKNOWN_EVENTS = Counter(
    "podium_projection_unknown_events",
    "Events skipped because the projection does not know their type (a newer producer).",
    ["projection", "event_type"],
)
PROJECTION_CAUGHT_UP = Gauge(
    "podium_projection_caught_up", "1 once the projection has caught up with the log.", ["projection"]
)
VIEW_CACHED_SPACES = Gauge(
    "podium_view_cached_spaces",
    "Spaces an in-memory view cache holds: the live ones, and ended ones until they are forgotten.",
    ["view"],
)
MEDIA_FRAMES = Counter(
    "podium_media_frames",
    "Frames at the media relay: in (admitted), out (delivered to subscribers), dropped (slow subscribers), refused.",
    ["direction"],
)
LOG_LOST = Gauge(
    "podium_log_lost",
    "1 for each partition a consumer stopped reading because its log was lost (libs/events/log_loss.py).",
    ["consumer", "topic", "partition"],
)
PRESENCE_DEGRADED = Gauge(
    "podium_presence_degraded",
    "1 while presence is behind its heartbeat input, or that input is silent, on a partition it reads: "
    "it times nobody out there until the input is current again.",
)
LIVE_SPACES = Gauge(
    "podium_live_spaces", "Spaces that are live now, in the whole cluster (every room replica reports it)."
)
SPACE_PARTICIPANTS = Gauge(
    "podium_space_participants",
    "Participants of live Spaces, by role, in the whole cluster (every room replica reports it).",
    ["role"],
)
# Whole-cluster figures every replica reports alike: aggregate with max(), not sum().
CLUSTER_WIDE = frozenset({"podium_live_spaces", "podium_space_participants"})
WEBHOOK_ATTEMPTS = Counter(
    "podium_webhook_attempts",
    "Webhook delivery attempts by outcome: delivered, failed (to be retried), dead_lettered (no attempts left).",
    ["outcome"],
)
WEBHOOK_EVENT_TO_POST = Histogram(
    "podium_webhook_event_to_post_seconds",
    "From an event's occurred_at to the first POST of its webhook delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WEBHOOK_EVENTS_TOO_OLD = Counter(
    "podium_webhook_events_too_old",
    "Events older than the webhooks retention when the service read them: not delivered.",
)
GATEWAY_FRAMES = Counter(
    "podium_gateway_frames",
    "20 ms Opus frames the gateway handled, by path: passthrough (the relay's frame forwarded as it is), "
    "mixed (voices decoded, summed and encoded), encoded (a browser's microphone, encoded for Publish), "
    "silence (nobody a listener hears talked), dropped_listener and dropped_uplink (a queue was full).",
    ["path"],
)
GATEWAY_FRAME_AGE = Histogram(
    "podium_gateway_frame_age_seconds",
    "From a frame's capture time (stamped by the speaker's gateway as it encodes it) to this gateway "
    "receiving it on Subscribe: Publish, the relay's tick and Subscribe (clocks of two gateways).",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
)
GATEWAY_STREAMS = Gauge("podium_gateway_streams", "WebRTC streams the gateway holds, by kind.", ["kind"])

DEAD_LETTERS = Counter(
    "podium_dead_letters",
    "Records a consumer could not decode or apply and sent to the dead-letter topic, by consumer.",
    ["consumer"],
)


def serve_metrics(port: int) -> int:
    """Serves /metrics on `port` (0: any free port); returns the port. Negative: disabled."""
    if port < 0:
        return -1
    server, _ = start_http_server(port)
    bound = server.server_port
    log.info("metrics on http://0.0.0.0:%d/metrics", bound)
    return bound
