"""The PresenceService servicer.

ReportPresence groups a gateway's entries by Space and writes one heartbeat
record per Space (keyed by Space id; per part of the Space, keyed by the part,
when Spaces are split: domain/parts.py), and now and then a pulse to every
other partition, with `acks=all`: the answer means the heartbeats are in the
log. Queries about a Space are answered by the replica whose faust table owns
it (application/query_routing.py), or gathered from the owners of its parts;
the "who's here" board is complete on every replica.

ReportPresence and GatewayDisconnected are a client gateway's own calls: a
gateway token, naming the same gateway as the request. The rest are users'.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from libs.domain.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, Validator
from libs.domain.identifiers import id_problem
from libs.domain.membership import ROLE_ORDER
from libs.domain.reasons import Reason
from libs.events.topics import PRESENCE_HEARTBEATS
from libs.grpckit.handlers import GATEWAYS, Authenticator, Caller, server_stream, unary
from libs.grpckit.pagination import Key, Page, next_page_token, paginate, parse_page
from libs.grpckit.validation import require_id
from libs.streams.faust_app import partition_of
from podium.presence.v1 import presence_service_pb2 as pb
from podium.presence.v1 import presence_service_pb2_grpc
from podium.presence.v1 import presence_types_pb2 as pt
from services.presence.application.query_routing import FORWARDED_BY, PARTS_ASKED, PeerRouter
from services.presence.application.stream_processor import PresenceStreams
from services.presence.domain.parts import part_key, part_keys, part_of, user_key
from services.presence.domain.space_presence import counts, present_user
from services.presence.projections.space_board import Lifecycle, SpaceBoard

_REFUSED = {Lifecycle.UNKNOWN: Reason.SPACE_NOT_FOUND, Lifecycle.ENDED: Reason.SPACE_ENDED}


class PresenceApi(presence_service_pb2_grpc.PresenceServiceServicer):
    def __init__(
        self,
        authenticator: Authenticator,
        streams: PresenceStreams,
        board: SpaceBoard,
        producer: AIOKafkaProducer,
        max_entries: int,
        peers: PeerRouter,
        view_wait_seconds: float = 1.0,
        pulse_every_seconds: float = 7.5,
    ):
        self.authenticator = authenticator
        self.streams = streams
        self.board = board
        self.producer = producer
        self.max_entries = max_entries
        self.peers = peers
        self.view_wait_seconds = view_wait_seconds
        self.pulse_every_seconds = pulse_every_seconds
        self.pulsed_at: dict[str, float] = {}  # gateway -> when its reports last sent pulses (monotonic)

    @unary(callers=GATEWAYS)
    async def ReportPresence(
        self, request: pb.ReportPresenceRequest, caller: Caller
    ) -> pb.ReportPresenceResponse:
        check = Validator()
        check.check(bool(request.gateway_id.strip()), "gateway_id", "required")
        check.check(
            len(request.entries) <= self.max_entries, "entries", f"at most {self.max_entries} per call"
        )
        bad = [i for i, e in enumerate(request.entries) if id_problem(e.user_id) or id_problem(e.space_id)]
        check.check(not bad, "entries", f"user_id and space_id must be ids (first bad entry: {bad[:1]})")
        check.raise_if_any("ReportPresence has invalid fields")
        _require_own_gateway(request.gateway_id, caller)
        spaces = {entry.space_id for entry in request.entries}
        lifecycles = await self.board.lifecycles(spaces, self.view_wait_seconds)
        refused = {s: _REFUSED[life] for s, life in lifecycles.items() if life in _REFUSED}
        split = {s: self._parts_of(s) for s in spaces if s not in refused}
        rejected = []
        by_part: dict[tuple[str, int], list[str]] = defaultdict(list)  # (Space, part) -> users
        for index, entry in enumerate(request.entries):
            reason = refused.get(entry.space_id)
            if reason is None:
                parts = split[entry.space_id]
                by_part[entry.space_id, part_of(entry.user_id, parts) if parts > 1 else 0].append(
                    entry.user_id
                )
            else:
                rejected.append(
                    pb.RejectedPresenceEntry(
                        index=index, user_id=entry.user_id, space_id=entry.space_id, reason=reason.reason
                    )
                )
        # A split Space's parts whose keys share a partition share a record: a record costs far
        # more than an entry, and a large Space has many parts on each partition.
        partitions = len(await self.producer.partitions_for(PRESENCE_HEARTBEATS.name))
        records: dict[tuple[str, int], list[tuple[int, list[str]]]] = defaultdict(list)
        for (space_id, part), users in by_part.items():
            where = partition_of(part_key(space_id, part, split[space_id]), partitions)
            records[space_id, where].append((part, users))
        futures, keys = [], []
        for (space_id, _), grouped in records.items():
            parts, (part, _) = split[space_id], grouped[0]
            keys.append(key := part_key(space_id, part, parts))
            encoded = key.encode()
            for piece in _pieces([user for _, users in grouped for user in users]):
                batch = pt.HeartbeatBatch(
                    gateway_id=request.gateway_id,
                    space_id=space_id,
                    user_ids=piece,
                    part=part,
                    parts=parts if parts > 1 else 0,
                    several_parts=len(grouped) > 1,
                )
                futures.append(
                    await self.producer.send(PRESENCE_HEARTBEATS.name, batch.SerializeToString(), key=encoded)
                )
        futures += await self._pulse(request.gateway_id, keys)
        for future in futures:
            await future
        return pb.ReportPresenceResponse(accepted=len(request.entries) - len(rejected), rejected=rejected)

    def _parts_of(self, space_id: str) -> int:
        """How many parts the Space's presence is in: as the board read it, or as part 0 says when this
        replica holds it (it decides, so it knows first)."""
        part_0 = self.streams.space(space_id)
        return max(self.board.parts_of(space_id), part_0.get("parts", 1) if part_0 is not None else 1)

    async def _pulse(self, gateway_id: str, keys: Iterable[str]) -> list:
        """A pulse to each partition none of the report's Spaces (or parts) falls on, every `pulse_every_seconds`
        of a gateway's reports: its silence there is then evidence that it holds nobody there any
        more (domain/evidence.py), even where no other gateway reports. (Forgotten state, say after
        the gateway moved to this replica, means a pulse at once: never fewer.)"""
        now = time.monotonic()
        if now - self.pulsed_at.get(gateway_id, float("-inf")) < self.pulse_every_seconds:
            return []
        self.pulsed_at[gateway_id] = now
        partitions = await self.producer.partitions_for(PRESENCE_HEARTBEATS.name)
        covered = {partition_of(key, len(partitions)) for key in keys}
        pulse = pt.HeartbeatBatch(gateway_id=gateway_id).SerializeToString()
        return [
            await self.producer.send(PRESENCE_HEARTBEATS.name, pulse, partition=partition)
            for partition in sorted(partitions - covered)
        ]

    @unary(callers=GATEWAYS)
    async def GatewayDisconnected(
        self, request: pb.GatewayDisconnectedRequest, caller: Caller
    ) -> pb.GatewayDisconnectedResponse:
        if not request.gateway_id.strip():
            raise InvalidArgument("gateway_id is required", [FieldViolation("gateway_id", "required")])
        _require_own_gateway(request.gateway_id, caller)
        self.pulsed_at.pop(request.gateway_id, None)
        loss = pt.HeartbeatBatch(gateway_id=request.gateway_id, gateway_disconnected=True).SerializeToString()
        partitions = self.producer.partitions_for(PRESENCE_HEARTBEATS.name)
        for partition in sorted(await partitions):
            await self.producer.send_and_wait(PRESENCE_HEARTBEATS.name, loss, partition=partition)
        return pb.GatewayDisconnectedResponse()

    @unary
    async def GetSpacePresence(
        self, request: pb.GetSpacePresenceRequest, caller: Caller
    ) -> pb.GetSpacePresenceResponse:
        space_id = require_id(request.space_id, "space_id")
        page = parse_page(request.page_size, request.page_token, space_id)
        await self._require_known(space_id)
        # Host, co-hosts, speakers, listeners (as the room says), then anyone not (yet) a member;
        # each in the order they connected.
        roles = {m.user_id: ROLE_ORDER.get(m.role, 9) for m in self.board.snapshot(space_id)}

        def key(user: pt.PresentUser) -> Key:  # as `_answer_here` orders its entries
            return roles.get(user.user_id, 9), user.connected_at.ToNanoseconds() // 1000, user.user_id

        answers, here = await self._ask_owners(space_id, request, caller)
        if here or not answers:
            answers.append(self._answer_here(here, page, roles))
        if len(answers) == 1:
            return answers[0]
        # Each owner answered the page after the token from its parts: the page is the first of
        # all of them, and there is more if any part had more.
        users = sorted((user for answer in answers for user in answer.users), key=key)
        chunk, _ = paginate(users, page, key)
        more = len(users) > len(chunk) or any(answer.next_page_token for answer in answers)
        return pb.GetSpacePresenceResponse(
            present_count=sum(answer.present_count for answer in answers),
            counts=_summed(answer.counts for answer in answers),
            users=chunk,
            next_page_token=next_page_token(page, key(chunk[-1]) if chunk else (), more=more),
        )

    async def _ask_owners(
        self, space_id: str, request: pb.GetSpacePresenceRequest, caller: Caller
    ) -> tuple[list[pb.GetSpacePresenceResponse], list[str]]:
        """The answers about the Space of the replicas that own its parts (one for a Space not
        split), and the keys of the parts to answer for here: those owned here, and those whose
        owner could not be reached. A question forwarded here is answered for the parts it names."""
        keys = part_keys(space_id, self._parts_of(space_id))
        named = caller.metadata.get(PARTS_ASKED)
        if caller.metadata.get(FORWARDED_BY) and named:
            return [], [k for k in named.split(",") if k in keys]
        owners: dict[str | None, list[str]] = defaultdict(list)
        for key in keys:
            owners[self.peers.owner(key, caller)].append(key)
        here = owners.pop(None, [])
        addresses = list(owners)
        replies = await asyncio.gather(
            *(
                self.peers.ask(
                    address,
                    "GetSpacePresence",
                    request,
                    pb.GetSpacePresenceResponse,
                    caller,
                    extra=((PARTS_ASKED, ",".join(owners[address])),),
                )
                for address in addresses
            )
        )
        answers = []
        for address, reply in zip(addresses, replies, strict=True):
            if reply is None:
                here += owners[address]  # unreachable: this replica's copy, which may lag
            else:
                answers.append(reply)
        return answers, here

    def _answer_here(self, keys: list[str], page: Page, roles: dict[str, int]) -> pb.GetSpacePresenceResponse:
        """From this replica's table: the page of the present users of these parts (the Space's one
        key, not split), and their counts."""

        def key(item) -> Key:  # the PresentUser's connected_at in whole microseconds
            user, (_gateway, connected_at, _last_seen) = item
            return roles.get(user, 9), int(connected_at * 1e9) // 1000, user

        states = self._states(keys)
        present = [item for state in states for item in state["present"].items()]
        chunk, token = paginate(sorted(present, key=key), page, key)
        return pb.GetSpacePresenceResponse(
            present_count=len(present),
            counts=_summed(_state_counts(state) for state in states),
            users=[present_user(user, entry) for user, entry in chunk],
            next_page_token=token,
        )

    def _states(self, keys: list[str]) -> list[dict]:
        return [state for key in keys if (state := self.streams.space(key)) is not None]

    async def _require_known(self, space_id: str) -> None:
        lifecycles = await self.board.lifecycles((space_id,), self.view_wait_seconds)
        if lifecycles[space_id] is Lifecycle.UNKNOWN:
            raise NotFound(f"space {space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)

    async def _counts_from_owner(self, space_id: str, caller: Caller) -> pt.SpaceCounts:
        request = pb.GetSpacePresenceRequest(space_id=space_id, page_size=1)
        answers, here = await self._ask_owners(space_id, request, caller)
        return _summed([*(a.counts for a in answers), *(_state_counts(s) for s in self._states(here))])

    @server_stream
    async def WatchSpace(self, request: pb.WatchSpaceRequest, caller: Caller):
        space_id = require_id(request.space_id, "space_id")
        await self._require_known(space_id)
        watcher = self.board.watch(space_id)
        try:
            while True:
                if watcher.needs_snapshot:
                    watcher.needs_snapshot = False
                    counts = await self._counts_from_owner(space_id, caller)
                    members = self.board.snapshot(space_id)
                    space = await self.board.space(space_id)
                    snapshot = pt.SpaceSnapshot(
                        space_id=space_id, members=members, counts=counts, space=space
                    )
                    yield pb.WatchSpaceResponse(snapshot=snapshot)
                    continue
                try:
                    change = watcher.queue.get_nowait()
                except asyncio.QueueEmpty:
                    watcher.wake.clear()
                    await watcher.wake.wait()
                    continue
                if isinstance(change, pt.SpaceChange):
                    yield pb.WatchSpaceResponse(space_change=change)
                else:
                    yield pb.WatchSpaceResponse(change=change)
        finally:
            self.board.unwatch(watcher)

    @unary
    async def GetUserPresence(
        self, request: pb.GetUserPresenceRequest, caller: Caller
    ) -> pb.GetUserPresenceResponse:
        user_id = require_id(request.user_id, "user_id")
        asked = pb.GetUserPresenceRequest(user_id=user_id)  # the owner is asked about the same id
        # The board (complete on every replica) says where the user is connected; the owning
        # replica's table confirms it and has the details.
        for space_id in self.board.connected_in(user_id):
            key = user_key(space_id, user_id, self._parts_of(space_id))
            owner = self.peers.owner(key, caller)
            if owner is not None:
                answer = await self.peers.ask(
                    owner, "GetUserPresence", asked, pb.GetUserPresenceResponse, caller
                )
                if answer is not None:
                    if answer.present:
                        return answer
                    continue
            state = self.streams.space(key)
            entry = state["present"].get(user_id) if state is not None else None
            if entry is not None:
                return pb.GetUserPresenceResponse(
                    present=True, space_id=space_id, user=present_user(user_id, entry)
                )
        return pb.GetUserPresenceResponse(present=False)


def _state_counts(state: dict) -> pt.SpaceCounts:
    current, peak, unique = counts(state)
    return pt.SpaceCounts(current_listeners=current, peak_listeners=peak, unique_listeners=unique)


def _summed(parts: Iterable[pt.SpaceCounts]) -> pt.SpaceCounts:
    """A Space's counts from its parts' (a user is in one part only): current and unique exactly;
    the peak is the sum of the parts' peaks since the Space last split (a split starts each part's
    peak again from who it holds), exact while the Space grows, an upper bound once its parts
    peaked at different times."""
    total = pt.SpaceCounts()
    for part in parts:
        total.current_listeners += part.current_listeners
        total.peak_listeners += part.peak_listeners
        total.unique_listeners += part.unique_listeners
    return total


def _require_own_gateway(gateway_id: str, caller: Caller) -> None:
    if gateway_id != caller.user_id:
        raise PermissionDenied(
            f"gateway_id {gateway_id!r} is not the gateway your token names ({caller.user_id!r}): "
            "a gateway reports only for itself",
            reason=Reason.NOT_YOUR_GATEWAY,
        )


RECORD_BYTES = 512 * 1024  # a heartbeat record's user ids at most: half the producer's 1 MB record


def _pieces(users: list[str], budget: int = RECORD_BYTES) -> list[list[str]]:
    """`users` in runs whose ids fit one record. A report may carry 50,000 entries, and those of one
    unsplit Space were one record: past about 25,000 UUID ids it was over the producer's 1 MB and
    the call failed. A heartbeat is evidence about each user alone, so several records say the same."""
    pieces, piece, size = [], [], 0
    for user in users:
        if piece and size + len(user) + 3 > budget:  # + the field's tag and length
            pieces.append(piece)
            piece, size = [], 0
        piece.append(user)
        size += len(user) + 3
    if piece:
        pieces.append(piece)
    return pieces
