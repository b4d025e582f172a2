"""What the manifests must contain: Podium's services and topics, from the code.

Each service's module, port and health name come from the dev stack's catalogue
(libs/devstack/catalogue.py), the one list of services; this adds only what
deploying needs to know about each.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.devstack import catalogue as devstack
from libs.events import topics as t
from libs.events.topics import EVERY_TOPIC, TopicSpec


@dataclass(frozen=True)
class KafkaAccess:
    """What a service does on Kafka, from its code; each KafkaUser's ACLs grant exactly this.

    `writes`: topics it produces to (Write, Describe) and makes when they are missing (Create):
    its own, and the dead-letter topic every outbox relay and projection runner writes.
    `reads`: topics it consumes (Read, Describe), its own included where it reads them back (its
    views, the relay's check of its log). Group-less readers need no group; a faust app's
    consumer group is its app id, and its internal topics (table changelogs, the leader topic)
    start with `<app id>-`.
    """

    writes: tuple[TopicSpec, ...]
    reads: tuple[TopicSpec, ...]
    faust_app: str = ""


@dataclass(frozen=True)
class DeployedService:
    name: str  # workload, Service, ServiceAccount, ConfigMap, and the image podium-<name>
    public: bool  # gateways call it: NetworkPolicy opens its port to them
    uses_postgres: bool  # has a schema in PostgreSQL (else Kafka only)
    kafka: KafkaAccess
    kind: str = "Deployment"
    peers: bool = False  # replicas call each other (presence forwards queries to the owning replica)
    edge: bool = False  # faces the internet (the client gateway): its HTTP and media ports, never gRPC

    @property
    def balanced(self) -> bool:
        """Gateways call any replica: besides its Service, a headless `<name>-headless` lets them
        balance calls themselves (the relay is not balanced: the room names the one to dial)."""
        return self.public and self.kind == "Deployment"

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

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka.writes or self.kafka.reads)

    @property
    def kafka_user(self) -> str:  # its KafkaUser, and the Secret Strimzi writes its password to
        return f"podium-{self.name}"


SERVICES: tuple[DeployedService, ...] = (
    DeployedService(
        "room",
        public=True,
        uses_postgres=True,
        kafka=KafkaAccess(
            writes=(t.ROOM_EVENTS, t.DEAD_LETTER),
            reads=(t.ROOM_EVENTS, t.MODERATION_EVENTS, t.PRESENCE_EVENTS, t.DEAD_LETTER),
        ),
    ),
    DeployedService(
        "presence",
        public=True,
        uses_postgres=True,
        peers=True,
        kafka=KafkaAccess(
            writes=(t.PRESENCE_HEARTBEATS, t.PRESENCE_EVENTS, t.DEAD_LETTER),
            reads=(
                t.PRESENCE_HEARTBEATS,
                t.ROOM_EVENTS,
                t.MODERATION_EVENTS,
                t.PRESENCE_EVENTS,
                t.MEDIA_EVENTS,
            ),
            faust_app="podium-presence",
        ),
    ),
    DeployedService(
        "moderation",
        public=True,
        uses_postgres=True,
        kafka=KafkaAccess(
            writes=(t.MODERATION_EVENTS, t.DEAD_LETTER),
            reads=(t.ROOM_EVENTS, t.MODERATION_EVENTS, t.DEAD_LETTER),
            faust_app="podium-moderation-reports",
        ),
    ),
    # A StatefulSet: the room service hashes Spaces onto relays by stable id.
    DeployedService(
        "media-relay",
        public=True,
        uses_postgres=True,
        kind="StatefulSet",
        kafka=KafkaAccess(
            writes=(t.MEDIA_EVENTS, t.MEDIA_RECORDING, t.DEAD_LETTER),
            reads=(t.ROOM_EVENTS, t.MODERATION_EVENTS, t.MEDIA_EVENTS, t.DEAD_LETTER),
        ),
    ),
    DeployedService(
        "replay",
        public=True,
        uses_postgres=True,
        kafka=KafkaAccess(
            writes=(t.REPLAY_EVENTS, t.DEAD_LETTER),
            reads=(
                t.ROOM_EVENTS,
                t.MODERATION_EVENTS,
                t.MEDIA_EVENTS,
                t.MEDIA_RECORDING,
                t.REPLAY_EVENTS,
                t.DEAD_LETTER,
            ),
        ),
    ),
    # It publishes nothing: the dead-letter topic is for records its view cannot decode.
    DeployedService(
        "webhooks",
        public=True,
        uses_postgres=True,
        kafka=KafkaAccess(
            writes=(t.DEAD_LETTER,),
            reads=(t.ROOM_EVENTS, t.MODERATION_EVENTS, t.REPLAY_EVENTS, t.DEAD_LETTER),
        ),
    ),
    # Health only: no gateway calls it.
    DeployedService(
        "analytics",
        public=False,
        uses_postgres=False,
        kafka=KafkaAccess(
            writes=(t.ANALYTICS_SPACE_STATS, t.ANALYTICS_LISTENERS_PER_MINUTE, t.ANALYTICS_TICKS),
            reads=(t.ROOM_EVENTS, t.MEDIA_EVENTS, t.REPLAY_EVENTS, t.ANALYTICS_TICKS),
            faust_app="podium-analytics",
        ),
    ),
    # The reference client gateway, an example edge: browsers reach its HTTP port, not its gRPC
    # one (health only); it calls the public services as a gateway, and touches neither Kafka nor
    # PostgreSQL.
    DeployedService(
        "gateway", public=False, edge=True, uses_postgres=False, kafka=KafkaAccess(writes=(), reads=())
    ),
)


def expected_topics() -> dict[str, TopicSpec]:
    return {t.name: t for t in EVERY_TOPIC}
