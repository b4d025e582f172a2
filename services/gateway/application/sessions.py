"""A browser's streams: listening (join, then the Space's feed) and speaking (microphone to Publish).

    answer = await sessions.listen(user, token, space_id, invite_token, offer)
    answer = await sessions.speak(user, token, space_id, offer)

Listening joins the Space with the user's own token (JoinSpace), so the room
decides who may be there; the stream then counts as the user's presence until
its peer connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from libs.telemetry.metrics import GATEWAY_STREAMS
from podium.media.v1 import media_service_pb2 as media_pb
from podium.presence.v1 import presence_service_pb2 as presence_pb
from podium.room.v1 import room_service_pb2 as room_pb
from podium.room.v1 import room_types_pb2 as room_types
from services.gateway.application.ice_servers import IceServerSource
from services.gateway.application.membership_guard import MembershipGuard
from services.gateway.application.presence_reporter import Connections
from services.gateway.application.space_feed import Feeds
from services.gateway.application.speaker_uplink import SpeakerUplink
from services.gateway.infrastructure.opus import Decoder, Encoder
from services.gateway.infrastructure.podium import PodiumClients, bearer
from services.gateway.infrastructure.rtc import ListenerTrack, MicrophoneReader, Peer

log = logging.getLogger(__name__)


class Codecs:
    def decoder(self) -> Decoder:
        return Decoder()

    def encoder(self) -> Encoder:
        return Encoder()


class BadOffer(ValueError):
    """The browser's offer cannot be answered (malformed SDP, or no audio where it must send some)."""


@dataclass(frozen=True)
class Offer:
    sdp: str
    type: str


@dataclass(frozen=True)
class Answer:
    sdp: str
    type: str
    role: str = ""


class Sessions:
    def __init__(
        self,
        clients: PodiumClients,
        gateway_id: str,
        connections: Connections,
        buffer_frames: int,
        ice_servers: IceServerSource | None = None,
    ):
        self.clients = clients
        self.ice_servers = ice_servers
        self.gateway_id = gateway_id
        self.connections = connections
        self.buffer_frames = buffer_frames
        self.feeds = Feeds(self._subscribe, Codecs())
        self.peers: set[Peer] = set()
        self.uplinks: set[SpeakerUplink] = set()
        self.streams: dict[tuple[str, str], set[Peer]] = {}  # (Space, user) -> their peer connections
        self.guard = MembershipGuard(self._watch, self.close_streams)
        self._closing: set[asyncio.Task] = set()

    async def _watch(self, space_id: str, token: str):
        request = presence_pb.WatchSpaceRequest(space_id=space_id)
        async for update in self.clients.presence.WatchSpace(request, metadata=bearer(token)):
            yield update

    def close_streams(self, space_id: str, user_id: str | None) -> None:
        """Ends `user_id`'s streams in the Space (None: everyone's); the peers' own cleanup follows."""
        for (space, user), peers in list(self.streams.items()):
            if space == space_id and user_id in (None, user):
                for peer in tuple(peers):
                    task = asyncio.ensure_future(peer.close())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def _subscribe(self, space_id: str):
        relay = await self.clients.relay_for(space_id)
        request = media_pb.SubscribeRequest(space_id=space_id, gateway_id=self.gateway_id)
        async for tick in relay.Subscribe(request, metadata=self.clients.as_gateway):
            yield tick

    async def listen(
        self, user_id: str, token: str, space_id: str, invite_token: str, offer: Offer
    ) -> Answer:
        joined = await self.clients.room.JoinSpace(
            room_pb.JoinSpaceRequest(space_id=space_id, invite_token=invite_token),
            metadata=bearer(token),
            timeout=10,
        )
        track = ListenerTrack(user_id, self.buffer_frames)

        def closed() -> None:
            self.feeds.leave(space_id, track)
            self.connections.remove(user_id, space_id)
            track.stop()
            GATEWAY_STREAMS.labels("listen").dec()

        peer = self._peer(closed, space_id, user_id, token)
        self.feeds.join(space_id, track)
        self.connections.add(user_id, space_id)
        GATEWAY_STREAMS.labels("listen").inc()
        answer = await self._answer(peer, offer, send=track)
        return Answer(answer.sdp, answer.type, room_types.Role.Name(joined.role))

    async def speak(self, user_id: str, token: str, space_id: str, offer: Offer) -> Answer:
        async def open_publish():
            relay = await self.clients.relay_for(space_id)
            return relay.Publish(metadata=bearer(token))

        uplink: SpeakerUplink | None = None

        def closed() -> None:
            if uplink is not None:
                self.uplinks.discard(uplink)
                uplink.cancel()
            GATEWAY_STREAMS.labels("speak").dec()

        peer = self._peer(closed, space_id, user_id, token)
        GATEWAY_STREAMS.labels("speak").inc()
        answer = await self._answer(peer, offer)
        if not peer.remote_track.done():  # set while the offer is applied, when it sends audio
            await peer.close()
            raise BadOffer("the offer sends no audio track: add the microphone's track before offering")
        track = peer.remote_track.result()
        uplink = SpeakerUplink(space_id, user_id, MicrophoneReader(track).read, Encoder(), open_publish)
        uplink.start()
        self.uplinks.add(uplink)
        return Answer(answer.sdp, answer.type)

    @staticmethod
    async def _answer(peer: Peer, offer: Offer, send=None):
        """The gateway's answer; an offer aiortc cannot take closes the peer and is the caller's fault."""
        try:
            return await peer.answer(offer.sdp, offer.type, send=send)
        except Exception as e:  # aiortc raises ValueError, but also others, on SDP it cannot use
            await peer.close()
            raise BadOffer(f"the offer's SDP cannot be used: {e}") from e

    def _peer(self, closed, space_id: str, user_id: str, token: str) -> Peer:
        """A peer connection that counts as one of `user_id`'s streams in the Space while it lasts."""
        peer: Peer
        key = (space_id, user_id)

        def on_closed() -> None:
            self.peers.discard(peer)
            held = self.streams.get(key, set())
            held.discard(peer)
            if not held:
                self.streams.pop(key, None)
                self.guard.remove(space_id, user_id)
            closed()

        peer = Peer(on_closed, self.ice_servers.for_user(self.gateway_id) if self.ice_servers else [])
        self.peers.add(peer)
        self.streams.setdefault(key, set()).add(peer)
        self.guard.add(space_id, user_id, token)
        return peer

    async def stop(self) -> None:
        for peer in tuple(self.peers):
            await peer.close()
        for uplink in tuple(self.uplinks):
            await uplink.stop()
        await self.feeds.stop()
        await self.guard.stop()
