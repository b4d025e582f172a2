"""The gateway's settings: its own ports, the Podium services it dials, and its gateway token."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.production import local_addresses
from libs.config.settings import PodiumSettings
from services.gateway.domain.ice import IceConfigurationError, IceServer, parse_ice_servers

_PEERS = ("room", "presence", "moderation", "replay")


class GatewaySettings(PodiumSettings):
    # An edge: it calls the services' gRPC APIs and keeps nothing of its own.
    uses_database: ClassVar[bool] = False
    uses_kafka: ClassVar[bool] = False

    gateway_port: int = Field(
        50058, ge=0, le=65535, description="Port of the gateway's gRPC server (health and reflection only)."
    )
    gateway_bind_host: str = Field(
        "0.0.0.0", description="Interface the gateway's gRPC and HTTP servers bind."
    )
    gateway_http_port: int = Field(
        8080, ge=0, le=65535, description="Port of the web client, its JSON API and WebRTC signalling."
    )
    gateway_id: str = Field(
        "gw-web-1", min_length=1, description="This gateway's id, the `sub` of its token."
    )
    gateway_token: SecretStr = Field(
        SecretStr(""),
        description="The gateway's own token (`podium token --gateway ID`). Unset in development: minted "
        "with the development key; production refuses to start without it.",
    )
    gateway_room_address: str = Field("127.0.0.1:50051", description="The room service (host:port).")
    gateway_presence_address: str = Field("127.0.0.1:50052", description="The presence service.")
    gateway_moderation_address: str = Field("127.0.0.1:50053", description="The moderation service.")
    gateway_replay_address: str = Field("127.0.0.1:50055", description="The replay service.")
    gateway_dev_sign_in: bool = Field(
        True,
        description="Whether the page may sign in as any named user (the gateway mints the token). "
        "Production refuses to start with it on: sign-in belongs to your identity provider.",
    )
    gateway_presence_interval_seconds: float = Field(
        5.0, gt=0, description="How often the gateway reports who it holds (one batched ReportPresence)."
    )
    gateway_listener_buffer_frames: int = Field(
        3,
        ge=1,
        description="20 ms frames a listener's stream may hold before the oldest is dropped: the "
        "gateway's share of mouth-to-ear latency.",
    )

    gateway_ice_servers: str = Field(
        "[]",
        description="ICE servers for the browsers' and the gateway's peer connections: a JSON list of "
        'RTCIceServer-like objects, e.g. `[{"urls": "stun:stun.example.org:3478"}, {"urls": '
        '["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]}]`. '
        "A TURN entry without `username` and `credential` gets time-limited ones per user "
        "(PODIUM_GATEWAY_TURN_SECRET). Empty: host candidates only, enough on one machine or LAN.",
    )
    gateway_turn_secret: SecretStr = Field(
        SecretStr(""),
        description="The TURN server's shared secret (coturn's `static-auth-secret`): the gateway signs "
        "each user's TURN credentials with it (username `<expiry>:<user>`, HMAC-SHA1).",
    )
    gateway_turn_credential_ttl_seconds: int = Field(
        86400,
        ge=60,
        description="How long a TURN credential the gateway hands out stays valid. A call that outlives "
        "it keeps its allocation; only new allocations need a fresh one.",
    )

    @model_validator(mode="after")
    def _ice_servers_parse(self) -> GatewaySettings:
        self.ice_servers()  # refuses to start on a malformed list, naming the variable
        return self

    def ice_servers(self) -> tuple[IceServer, ...]:
        try:
            return parse_ice_servers(
                self.gateway_ice_servers, turn_secret=bool(self.gateway_turn_secret.get_secret_value())
            )
        except IceConfigurationError as e:
            raise ValueError(f"PODIUM_GATEWAY_ICE_SERVERS: {e}") from e

    def peer_addresses(self) -> dict[str, str]:
        return {name: getattr(self, f"gateway_{name}_address") for name in _PEERS}

    def own_token(self) -> str:
        """The token the gateway's own calls carry (ReportPresence, Subscribe, GetMediaEndpoint...)."""
        configured = self.gateway_token.get_secret_value()
        if configured:
            return configured
        return mint_token(
            self.jwt_secret.get_secret_value(),
            self.gateway_id,
            audience=self.jwt_audience,
            ttl_seconds=30 * 24 * 3600,
            roles=[GATEWAY_ROLE],
            key_id=self.jwt_key_id or None,
        )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if not self.gateway_token.get_secret_value():
            problems.append("PODIUM_GATEWAY_TOKEN is unset: give the gateway a token of its own")
        if self.gateway_dev_sign_in:
            problems.append(
                "PODIUM_GATEWAY_DEV_SIGN_IN is on (the development default): anyone could sign in as "
                "anyone; set it to false"
            )
        for name, address in self.peer_addresses().items():
            if local_addresses([address]):
                problems.append(
                    f"PODIUM_GATEWAY_{name.upper()}_ADDRESS is {address}, this machine: set the "
                    f"{name} service's address"
                )
        return problems
