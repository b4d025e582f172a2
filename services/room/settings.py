"""The room service's settings: the shared ones plus its port, limits and timings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from libs.config.production import local_addresses, namespace_relative_hosts, public_url_problem
from libs.config.settings import PodiumSettings
from libs.routing.hash_ring import HashRing, parse_nodes
from services.room.domain.limits import DEFAULT_TOPICS, RoomLimits


class RoomSettings(PodiumSettings):
    room_port: int = Field(50051, ge=0, le=65535, description="Port of the room gRPC server.")
    room_bind_host: str = Field("0.0.0.0", description="Interface the room gRPC server binds.")
    room_max_co_hosts: int = Field(2, ge=0, description="Co-hosts per Space besides the host.")
    room_max_speakers: int = Field(10, ge=0, description="Speakers per Space besides the host and co-hosts.")
    room_abandoned_grace_seconds: float = Field(
        300, ge=0, description="A live Space with no host or co-host present for this long ends itself."
    )
    room_abandoned_grace_without_evidence_seconds: float = Field(
        3600,
        ge=0,
        description="When the host and co-hosts left in a mass time-out (presence's brake: no evidence about "
        "them), the Space ends itself only after this long without them.",
    )
    room_sweep_interval_seconds: float = Field(
        5, gt=0, description="How often abandoned Spaces are looked for."
    )
    room_invite_link_base_url: str = Field(
        "https://podium.example/i/", description="Prefix of shareable invite link URLs; the token follows it."
    )
    room_default_invite_link_ttl_seconds: int = Field(
        86400, gt=0, description="Lifetime of an invite link when the request gives none."
    )

    room_space_topics: str = Field(
        ",".join(sorted(DEFAULT_TOPICS)),
        description="The topics a Space may name (up to 3 each), comma-separated.",
    )

    room_reminder_lead_seconds: float = Field(
        900, ge=0, description="Subscribers of a scheduled Space are reminded this long before its start."
    )
    room_start_window_seconds: float = Field(
        7200, gt=0, description="A scheduled Space not started this long after its start ends as expired."
    )

    room_directory_cache_spaces: int = Field(
        10_000,
        ge=1,
        description="Spaces whose state the directory keeps in memory while applying their events "
        "(live ones, in practice); others are folded from the event store when they come back.",
    )
    room_search_relevance_candidates: int = Field(
        2_000,
        ge=1,
        description="SearchSpaces ranks by relevance the newest this many Spaces that match its words "
        "(ranking scores every row it ranks, and a common word matches most Spaces); the other orders "
        "see every match.",
    )
    room_eviction_chunk: int = Field(
        1000,
        ge=1,
        description="Listeners the evictor takes out of a Space per append when it turns invite-only: "
        "each append is one transaction, so this bounds their size.",
    )
    room_listener_shard_joins_per_second: float = Field(
        500,
        ge=0,
        description="A live Space's listener shards (docs/decisions/0012) double when a stream its "
        "listeners join on takes more appends within a second than this, whichever replicas made "
        "them: half to two thirds of what one stream takes on a small core, where its p99 stays near "
        "50 ms. 0: Spaces never grow shards, and every join is on the Space's own stream.",
    )
    room_listener_shard_lanes: int = Field(
        1,
        ge=1,
        le=RoomLimits.max_listener_shards,  # what GrowListenerShards accepts
        description="Writer lanes a Space's listener shards are dealt to at its first growth "
        "(docs/decisions/0018): each room replica holds one lane and joins users on its shards only, so "
        "replicas sharing a join storm never write the same shard. A power of two; set it to the room's "
        "replica count rounded up (its autoscaler's maximum). Replicas beyond it hold no lane and "
        "write any shard, taking turns on it; unused lanes leave shards empty. 1: no lanes.",
    )
    room_census_interval_seconds: float = Field(
        5, gt=0, description="How often the live-Space metrics are read from the directory."
    )

    room_media_relays: str = Field(
        "relay-0=127.0.0.1:50054",
        description="The media relay instances GetMediaEndpoint hashes Spaces over: id=host:port, comma-separated. "
        "GetMediaEndpoint answers these addresses as they are, so in production they are fully qualified "
        "names a gateway in any namespace resolves.",
    )

    @field_validator("room_listener_shard_lanes")
    @classmethod
    def _power_of_two(cls, lanes: int) -> int:
        if lanes & (lanes - 1):
            raise ValueError(f"a power of two, got {lanes}")
        return lanes

    @field_validator("room_media_relays")
    @classmethod
    def _relays_parse(cls, value: str) -> str:
        parse_nodes(value)
        return value

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if problem := public_url_problem("PODIUM_ROOM_INVITE_LINK_BASE_URL", self.room_invite_link_base_url):
            problems.append(problem)
        relays = [node.address for node in parse_nodes(self.room_media_relays)]
        if local := local_addresses(relays):
            problems.append(
                f"PODIUM_ROOM_MEDIA_RELAYS names this machine ({', '.join(local)}): gateways elsewhere "
                "cannot reach it; list each relay's address gateways dial"
            )
        if relative := namespace_relative_hosts(relays):
            problems.append(
                f"PODIUM_ROOM_MEDIA_RELAYS names {', '.join(relative)}, which resolve only inside the "
                "relays' namespace: GetMediaEndpoint hands these to gateways, so give fully qualified "
                "names (<pod>.<headless service>.<namespace>.svc.<cluster domain>:port)"
            )
        return problems

    def media_relays(self) -> HashRing:
        return HashRing(parse_nodes(self.room_media_relays))

    def limits(self) -> RoomLimits:
        return RoomLimits(
            max_co_hosts=self.room_max_co_hosts,
            max_speakers=self.room_max_speakers,
            abandoned_grace=timedelta(seconds=self.room_abandoned_grace_seconds),
            topics=frozenset(t.strip() for t in self.room_space_topics.split(",") if t.strip()),
            reminder_lead=timedelta(seconds=self.room_reminder_lead_seconds),
            start_window=timedelta(seconds=self.room_start_window_seconds),
            abandoned_grace_without_evidence=timedelta(
                seconds=self.room_abandoned_grace_without_evidence_seconds
            ),
        )
