"""The PresenceService servicer.

ReportPresence groups a gateway's entries by Space and writes one heartbeat
record per Space (keyed by Space id) with `acks=all`: the answer means the
heartbeats are in the log. Queries about a Space are answered by the replica
whose faust table owns it (application/query_routing.py); the "who's here"
board is complete on every replica.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiokafka import AIOKafkaProducer

from libs.domain.errors import FieldViolation, InvalidArgument, Validator
from libs.events.topics import PRESENCE_HEARTBEATS
from libs.grpckit.handlers import Authenticator, Caller, server_stream, unary
from libs.grpckit.pagination import paginate, parse_page
from podium.presence.v1 import presence_service_pb2 as pb
from podium.presence.v1 import presence_service_pb2_grpc
from podium.presence.v1 import presence_types_pb2 as pt
from services.presence.application.query_routing import PeerRouter
from services.presence.application.stream_processor import PresenceStreams
from services.presence.domain.space_presence import counts
from services.presence.projections.space_board import SpaceBoard


def _present_user(user_id: str, entry: list) -> pt.PresentUser:
    gateway, connected_at, last_seen = entry
    user = pt.PresentUser(user_id=user_id, gateway_id=gateway)
    user.connected_at.FromNanoseconds(int(connected_at * 1e9))
    user.last_seen.FromNanoseconds(int(last_seen * 1e9))
    return user


class PresenceApi(presence_service_pb2_grpc.PresenceServiceServicer):
    def __init__(
        self,
        authenticator: Authenticator,
        streams: PresenceStreams,
        board: SpaceBoard,
        producer: AIOKafkaProducer,
        max_entries: int,
        peers: PeerRouter,
    ):
        self.authenticator = authenticator
        self.streams = streams
        self.board = board
        self.producer = producer
        self.max_entries = max_entries
        self.peers = peers

    @unary
    async def ReportPresence(
        self, request: pb.ReportPresenceRequest, caller: Caller
    ) -> pb.ReportPresenceResponse:
        check = Validator()
        check.check(bool(request.gateway_id.strip()), "gateway_id", "required")
        check.check(
            len(request.entries) <= self.max_entries, "entries", f"at most {self.max_entries} per call"
        )
        bad = [i for i, e in enumerate(request.entries) if not e.user_id or not e.space_id]
        check.check(not bad, "entries", f"user_id and space_id are required (first bad entry: {bad[:1]})")
        check.raise_if_any("ReportPresence has invalid fields")
        by_space: dict[str, list[str]] = defaultdict(list)
        for entry in request.entries:
            by_space[entry.space_id].append(entry.user_id)
        futures = []
        for space_id, users in by_space.items():
            batch = pt.HeartbeatBatch(gateway_id=request.gateway_id, space_id=space_id, user_ids=users)
            futures.append(
                await self.producer.send(
                    PRESENCE_HEARTBEATS.name, batch.SerializeToString(), key=space_id.encode()
                )
            )
        for future in futures:
            await future
        return pb.ReportPresenceResponse(accepted=len(request.entries))

    @unary
    async def GatewayDisconnected(
        self, request: pb.GatewayDisconnectedRequest, caller: Caller
    ) -> pb.GatewayDisconnectedResponse:
        if not request.gateway_id.strip():
            raise InvalidArgument("gateway_id is required", [FieldViolation("gateway_id", "required")])
        loss = pt.HeartbeatBatch(gateway_id=request.gateway_id, gateway_disconnected=True).SerializeToString()
        partitions = self.producer.partitions_for(PRESENCE_HEARTBEATS.name)
        for partition in sorted(await partitions):
            await self.producer.send_and_wait(PRESENCE_HEARTBEATS.name, loss, partition=partition)
        return pb.GatewayDisconnectedResponse()

    @unary
    async def GetSpacePresence(
        self, request: pb.GetSpacePresenceRequest, caller: Caller
    ) -> pb.GetSpacePresenceResponse:
        if not request.space_id:
            raise InvalidArgument("space_id is required", [FieldViolation("space_id", "required")])
        page = parse_page(request.page_size, request.page_token, request.space_id)
        owner = self.peers.owner(request.space_id, caller)
        if owner is not None:
            answer = await self.peers.ask(
                owner, "GetSpacePresence", request, pb.GetSpacePresenceResponse, caller
            )
            if answer is not None:
                return answer
        state = self.streams.space(request.space_id)
        if state is None:
            return pb.GetSpacePresenceResponse(present_count=0, counts=pt.SpaceCounts())
        # Host, co-hosts, speakers, listeners (as the room says), then anyone not (yet) a member.
        rank = {m.user_id: i for i, m in enumerate(self.board.snapshot(request.space_id))}
        ordered = sorted(
            state["present"].items(), key=lambda item: (rank.get(item[0], len(rank)), item[1][1], item[0])
        )
        chunk, token = paginate(ordered, page)
        return pb.GetSpacePresenceResponse(
            present_count=len(state["present"]),
            counts=self._counts(request.space_id),
            users=[_present_user(user, entry) for user, entry in chunk],
            next_page_token=token,
        )

    async def _counts_from_owner(self, space_id: str, caller: Caller) -> pt.SpaceCounts:
        owner = self.peers.owner(space_id, caller)
        if owner is not None:
            request = pb.GetSpacePresenceRequest(space_id=space_id, page_size=1)
            answer = await self.peers.ask(
                owner, "GetSpacePresence", request, pb.GetSpacePresenceResponse, caller
            )
            if answer is not None:
                return answer.counts
        return self._counts(space_id)

    def _counts(self, space_id: str) -> pt.SpaceCounts:
        state = self.streams.space(space_id)
        if state is None:
            return pt.SpaceCounts()
        current, peak, unique = counts(state)
        return pt.SpaceCounts(current_listeners=current, peak_listeners=peak, unique_listeners=unique)

    @server_stream
    async def WatchSpace(self, request: pb.WatchSpaceRequest, caller: Caller):
        if not request.space_id:
            raise InvalidArgument("space_id is required", [FieldViolation("space_id", "required")])
        watcher = self.board.watch(request.space_id)
        try:
            while True:
                if watcher.needs_snapshot:
                    watcher.needs_snapshot = False
                    counts = await self._counts_from_owner(request.space_id, caller)
                    members = self.board.snapshot(request.space_id)
                    snapshot = pt.SpaceSnapshot(space_id=request.space_id, members=members, counts=counts)
                    yield pb.WatchSpaceResponse(snapshot=snapshot)
                    continue
                try:
                    change = watcher.queue.get_nowait()
                except asyncio.QueueEmpty:
                    watcher.wake.clear()
                    await watcher.wake.wait()
                    continue
                yield pb.WatchSpaceResponse(change=change)
        finally:
            self.board.unwatch(watcher)

    @unary
    async def GetUserPresence(
        self, request: pb.GetUserPresenceRequest, caller: Caller
    ) -> pb.GetUserPresenceResponse:
        if not request.user_id:
            raise InvalidArgument("user_id is required", [FieldViolation("user_id", "required")])
        # The board (complete on every replica) says where the user is connected; the owning
        # replica's table confirms it and has the details.
        for space_id in self.board.connected_in(request.user_id):
            owner = self.peers.owner(space_id, caller)
            if owner is not None:
                answer = await self.peers.ask(
                    owner, "GetUserPresence", request, pb.GetUserPresenceResponse, caller
                )
                if answer is not None:
                    if answer.present:
                        return answer
                    continue
            state = self.streams.space(space_id)
            entry = state["present"].get(request.user_id) if state is not None else None
            if entry is not None:
                return pb.GetUserPresenceResponse(
                    present=True, space_id=space_id, user=_present_user(request.user_id, entry)
                )
        return pb.GetUserPresenceResponse(present=False)
