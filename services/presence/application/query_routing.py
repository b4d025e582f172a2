"""Presence scaled out: a query about a Space is answered by the replica that owns it.

Each replica's faust table holds the Spaces of the partitions it processes
(plus standby copies that may lag). faust's partition assignor shares every
member's advertised address (its `canonical_url`, here the replica's gRPC
address), so any replica can tell which one actively owns a Space's
partition. A query about a Space owned elsewhere is forwarded there once,
with the caller's token, correlation id and trace context, and marked so the
owner answers it itself even if the assignment moved meanwhile.

If the owner cannot be reached (it is restarting, or a rebalance is under
way), the replica answers from its own copy, which may be stale or empty for
a few seconds: the same guarantee a single replica gives during its restart.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from yarl import URL

from libs.grpckit.channels import ClientTls, dial
from libs.grpckit.handlers import Caller
from libs.streams.faust_app import partition_of

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

FORWARDED_BY = "podium-forwarded-by"
# On a forwarded GetSpacePresence: the keys of the Space's parts the owner is to answer for
# (domain/parts.py), when the Space is split and its parts are owned by several replicas.
PARTS_ASKED = "podium-presence-parts"
SERVICE = "podium.presence.v1.PresenceService"
_PASSED_ON = ("authorization", "x-correlation-id", "traceparent", "tracestate")


class PeerRouter:
    def __init__(
        self,
        app,
        table_name: str,
        partitions: int,
        own_address: str,
        timeout_seconds: float = 2.0,
        tls: ClientTls | None = None,
    ):
        self.app = app
        self.partitions = partitions
        self.table_name = table_name
        self.own_address = own_address
        self.timeout_seconds = timeout_seconds
        self.tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}

    def owner(self, key: str, caller: Caller) -> str | None:
        """The address of the replica to ask about `key` (a Space, or a part of one), or None to
        answer here."""
        if caller.metadata.get(FORWARDED_BY):
            return None  # one hop only
        partition = partition_of(key, self.partitions)
        try:
            # {member url: {changelog topic: [partitions it actively owns]}}. The table is keyed and
            # partitioned by Space id like its source topic, so the Space's partition is murmur2 of
            # its id (faust's own key_store would hash the JSON-encoded key instead).
            hosts = self.app.router.table_metadata(self.table_name)
        except Exception:  # no assignment yet (starting, rebalancing): answer here
            return None
        for url, topics in hosts.items():
            if any(partition in partitions for partitions in topics.values()):
                owner = URL(url)
                address = f"{owner.host}:{owner.port}"
                return None if address == self.own_address else address
        return None

    async def ask(
        self,
        address: str,
        method: str,
        request: Message,
        response_type: type[R],
        caller: Caller,
        extra: tuple[tuple[str, str], ...] = (),
    ):
        """The owner's answer, or None when it cannot be reached (then answer locally). `extra`:
        more metadata for the owner (which parts of a split Space to answer for)."""
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = dial(address, self.tls)
        call = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        metadata = [(k, caller.metadata[k]) for k in _PASSED_ON if caller.metadata.get(k)]
        metadata.append((FORWARDED_BY, self.own_address))
        metadata.extend(extra)
        try:
            return await call(request, metadata=metadata, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as e:
            log.warning(
                "%s to the owning replica %s failed (%s); answering locally", method, address, e.code()
            )
            return None

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
