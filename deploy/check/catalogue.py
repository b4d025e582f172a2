"""What the manifests must contain: Podium's services and topics, from the code.

Each service's module, port and health name come from the dev stack's catalogue
(libs/devstack/catalogue.py), the one list of services; this adds only what
deploying needs to know about each.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.devstack import catalogue as devstack
from libs.events.topics import ALL_TOPICS, TopicSpec


@dataclass(frozen=True)
class DeployedService:
    name: str  # workload, Service, ServiceAccount, ConfigMap, and the image podium-<name>
    public: bool  # gateways call it: NetworkPolicy opens its port to them
    uses_postgres: bool  # has a schema in PostgreSQL (else Kafka only)
    kind: str = "Deployment"
    peers: bool = False  # replicas call each other (presence forwards queries to the owning replica)

    @property
    def spec(self) -> devstack.ServiceSpec:
        return devstack.service(self.name)

    @property
    def module(self) -> str:  # python -m <module>
        return self.spec.module

    @property
    def port(self) -> int:
        return self.spec.default_port

    @property
    def port_env(self) -> str:
        return self.spec.port_env

    @property
    def health(self) -> str:  # grpc.health.v1 name that readiness asks for
        return self.spec.health_name


SERVICES: tuple[DeployedService, ...] = (
    DeployedService("room", public=True, uses_postgres=True),
    DeployedService("presence", public=True, uses_postgres=False, peers=True),
    DeployedService("moderation", public=True, uses_postgres=True),
    # A StatefulSet: the room service hashes Spaces onto relays by stable id.
    DeployedService("media-relay", public=True, uses_postgres=True, kind="StatefulSet"),
    DeployedService("replay", public=True, uses_postgres=True),
    # Health only: no gateway calls it.
    DeployedService("analytics", public=False, uses_postgres=False),
)

# faust keeps each table in a compacted changelog topic named <app id>-<table>-changelog,
# co-partitioned with the topics that feed it.
FAUST_CHANGELOGS: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(name, f"faust changelog of {name}", cleanup_policy="compact", retention_ms=-1)
        for name in (
            "podium-presence-presence-by-space-changelog",
            "podium-analytics-space-stats-changelog",
            "podium-analytics-space-members-changelog",
        )
    ),
    # A windowed table's changelog also deletes: windows expire after twice the auto-mute window
    # (PODIUM_MODERATION_AUTO_MUTE_WINDOW_SECONDS, 120 s by default).
    TopicSpec(
        "podium-moderation-reports-reporters-by-speaker-changelog",
        "faust changelog of moderation's report windows",
        cleanup_policy="compact,delete",
        retention_ms=240_000,
    ),
)


def expected_topics() -> dict[str, TopicSpec]:
    return {t.name: t for t in (*ALL_TOPICS, *FAUST_CHANGELOGS)}
