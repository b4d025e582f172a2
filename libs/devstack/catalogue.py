"""Every service the dev stack runs: data, so adding one is one line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str  # run as `python -m <module>`
    port_env: str
    default_port: int
    health_name: str  # the grpc.health.v1 service name reported per service


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("room", "services.room", "PODIUM_ROOM_PORT", 50051, "podium.room.v1.RoomService"),
    ServiceSpec(
        "presence", "services.presence", "PODIUM_PRESENCE_PORT", 50052, "podium.presence.v1.PresenceService"
    ),
    ServiceSpec(
        "moderation",
        "services.moderation",
        "PODIUM_MODERATION_PORT",
        50053,
        "podium.moderation.v1.ModerationService",
    ),
    ServiceSpec(
        "media-relay",
        "services.media_relay",
        "PODIUM_MEDIA_RELAY_PORT",
        50054,
        "podium.media.v1.MediaRelayService",
    ),
    ServiceSpec("replay", "services.replay", "PODIUM_REPLAY_PORT", 50055, "podium.replay.v1.ReplayService"),
    ServiceSpec(
        "analytics", "services.analytics", "PODIUM_ANALYTICS_PORT", 50056, "podium.analytics.v1.Analytics"
    ),
    ServiceSpec(
        "webhooks", "services.webhooks", "PODIUM_WEBHOOKS_PORT", 50057, "podium.webhooks.v1.WebhookService"
    ),
    # The reference client gateway: an example edge, with the web client on PODIUM_GATEWAY_HTTP_PORT.
    ServiceSpec("gateway", "services.gateway", "PODIUM_GATEWAY_PORT", 50058, "podium.gateway.v1.Gateway"),
)


def metrics_port(spec: ServiceSpec) -> int:
    """Where `podium up` serves a service's /metrics: 9101 for room (50051), 9102 for presence, ..."""
    return 9100 + spec.default_port - 50050


def service(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"no service named {name!r}; known: {', '.join(s.name for s in SERVICES)}")
