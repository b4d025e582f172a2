"""The RoomService servicer: requests become commands or queries, answers become protobuf.

Every method authenticates the caller from the bearer token (the `@unary`
decorator) and maps domain rejections to canonical gRPC statuses. Mutations
run through SpaceCommands; GetSpace, ListParticipants, GetParticipant and
ListSpeakRequests read the Space's stream (read-your-writes), and its listener shards when it has
them; ListSpaces reads the directory projection.
"""

from __future__ import annotations

import operator
from datetime import timedelta

from google.protobuf.message import Message

from libs.domain.errors import NotFound, PermissionDenied, Validator
from libs.domain.reasons import Reason
from libs.events.ids import new_id
from libs.grpckit.handlers import USERS_AND_GATEWAYS, Authenticator, Caller, unary
from libs.grpckit.pagination import paginate, parse_page
from libs.grpckit.rate_limits import INVITE, JOIN, SPEAK_REQUEST, RateLimiter
from libs.grpckit.validation import duration_field, optional_id, require_id, timestamp_field
from libs.routing.hash_ring import HashRing, Node
from podium.room.v1 import room_service_pb2 as pb
from podium.room.v1 import room_service_pb2_grpc, room_types_pb2
from services.room.application.invite_links import InviteLinks
from services.room.application.space_commands import SpaceCommands
from services.room.domain import commands as cmd
from services.room.domain.decide import UPDATABLE, is_language_tag
from services.room.domain.state import Space
from services.room.domain.view import (
    participant_message,
    participant_view,
    participants_in_order,
    space_view,
    speak_request_key,
    speak_requests_view,
)
from services.room.projections.moderation_reactions import ModerationReactions
from services.room.projections.space_directory import Search, SpaceDirectory

MAX_INVITE_LINK_TTL = timedelta(days=7)
place = operator.itemgetter(0)  # of `participants_in_order`'s (place, participant)
UPDATABLE_FIELDS = UPDATABLE
MAX_QUERY = 200  # characters of a search
MAX_FILTER = 100  # topics or hosts a search may name
MAX_BATCH = 100  # Spaces one BatchGetSpaces may ask for


def _printable(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _check_states(check: Validator, states) -> None:
    for value in states:
        check.check(
            value in room_types_pb2.SpaceState.values() and value != room_types_pb2.SPACE_STATE_UNSPECIFIED,
            "states",
            f"{value} is not a SpaceState",
        )


def _space_response(response_type):
    def respond(state: Space, _events: list[Message]):
        return response_type(space=space_view(state))

    return respond


class RoomApi(room_service_pb2_grpc.RoomServiceServicer):
    def __init__(
        self,
        authenticator: Authenticator,
        commands: SpaceCommands,
        directory: SpaceDirectory,
        invite_links: InviteLinks,
        default_link_ttl: timedelta,
        moderation: ModerationReactions,
        media_relays: HashRing | None = None,
        limits: RateLimiter | None = None,
    ):
        self.authenticator = authenticator
        self.commands = commands
        self.directory = directory
        self.invite_links = invite_links
        self.default_link_ttl = default_link_ttl
        self.moderation = moderation
        self.media_relays = media_relays or HashRing([Node("relay-0", "127.0.0.1:50054")])
        self.limits = limits or RateLimiter({})

    async def _mutate(self, space_id: str, command, caller: Caller, request, method: str, response_type):
        return await self.commands.run(
            space_id,
            command,
            caller,
            method=method,
            request=request,
            request_id=getattr(request, "request_id", ""),
            respond=_space_response(response_type),
            response_type=response_type,
        )

    async def _existing(self, space_id: str, read=None) -> Space:
        """The Space (read-your-writes): its own stream's state, or what `read` makes of it (counted
        over its listener shards, or with everyone in them)."""
        state = await (read or self.commands.current)(space_id)
        if not state.exists:
            raise NotFound(f"space {space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)
        return state

    # Lifecycle

    @unary
    async def CreateSpace(self, request: pb.CreateSpaceRequest, caller: Caller) -> pb.CreateSpaceResponse:
        space_id = new_id()
        command = cmd.CreateSpace(
            space_id=space_id,
            title=request.title,
            description=request.description,
            join_policy=request.join_policy,
            scheduled_start=timestamp_field(request.scheduled_start, "scheduled_start")
            if request.HasField("scheduled_start")
            else None,
            recording_enabled=request.recording_enabled,
            topics=tuple(request.topics),
            language=request.language,
        )
        return await self._mutate(space_id, command, caller, request, "CreateSpace", pb.CreateSpaceResponse)

    @unary
    async def UpdateSpace(self, request: pb.UpdateSpaceRequest, caller: Caller) -> pb.UpdateSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        paths = list(request.update_mask.paths)
        check = Validator()
        check.check(
            bool(paths), "update_mask", f"list the fields to change, from {', '.join(UPDATABLE_FIELDS)}"
        )
        for path in paths:
            check.check(path in UPDATABLE_FIELDS, "update_mask", f"{path!r} cannot be updated")
        check.raise_if_any("UpdateSpace needs a valid update_mask")
        command = cmd.UpdateSpace(
            space_id=space_id,
            title=request.title if "title" in paths else None,
            description=request.description if "description" in paths else None,
            join_policy=request.join_policy if "join_policy" in paths else None,
            scheduled_start=timestamp_field(request.scheduled_start, "scheduled_start")
            if "scheduled_start" in paths
            else None,
            recording_enabled=request.recording_enabled if "recording_enabled" in paths else None,
            topics=tuple(request.topics) if "topics" in paths else None,
            language=request.language if "language" in paths else None,
        )
        return await self._mutate(space_id, command, caller, request, "UpdateSpace", pb.UpdateSpaceResponse)

    @unary
    async def GetSpace(self, request: pb.GetSpaceRequest, caller: Caller) -> pb.GetSpaceResponse:
        state = await self._existing(require_id(request.space_id, "space_id"), self.commands.counted)
        return pb.GetSpaceResponse(space=space_view(state))

    @unary
    async def ListSpaces(self, request: pb.ListSpacesRequest, caller: Caller) -> pb.ListSpacesResponse:
        check = Validator()
        _check_states(check, request.states)
        check.raise_if_any()
        states = frozenset(request.states)
        host_user_id = optional_id(request.host_user_id, "host_user_id")
        page = parse_page(request.page_size, request.page_token, [sorted(states), host_user_id])
        spaces, next_token = await self.directory.query(states, host_user_id, page)
        return pb.ListSpacesResponse(spaces=spaces, next_page_token=next_token)

    @unary
    async def SearchSpaces(self, request: pb.SearchSpacesRequest, caller: Caller) -> pb.SearchSpacesResponse:
        check = Validator()
        words = request.query.strip()
        check.check(len(words) <= MAX_QUERY, "query", f"at most {MAX_QUERY} characters (got {len(words)})")
        check.check(_printable(words), "query", "printable characters only")
        check.check(
            all(0 < len(t) <= 64 and _printable(t) for t in request.topics),
            "topics",
            "each 1 to 64 printable characters",
        )
        _check_states(check, request.states)
        check.check(len(request.topics) <= MAX_FILTER, "topics", f"at most {MAX_FILTER}")
        check.check(
            not request.language or is_language_tag(request.language),
            "language",
            f"{request.language!r} is not a BCP 47 language tag (like en or pt-BR)",
        )
        check.check(len(request.host_user_ids) <= MAX_FILTER, "host_user_ids", f"at most {MAX_FILTER}")
        check.check(
            request.order_by in room_types_pb2.SpaceOrder.values(),
            "order_by",
            f"{request.order_by} is not a SpaceOrder",
        )
        check.raise_if_any("SearchSpaces has invalid fields")
        search = Search(
            words=words,
            states=frozenset(request.states),
            topics=frozenset(request.topics),
            language=request.language,
            host_user_ids=frozenset(require_id(h, "host_user_ids") for h in request.host_user_ids),
            order=request.order_by,
        )
        query = [words, sorted(search.states), sorted(search.topics), search.language.lower()]
        page = parse_page(
            request.page_size, request.page_token, [*query, sorted(search.host_user_ids), search.order]
        )
        spaces, next_token = await self.directory.search(search, page)
        return pb.SearchSpacesResponse(spaces=spaces, next_page_token=next_token)

    @unary
    async def BatchGetSpaces(
        self, request: pb.BatchGetSpacesRequest, caller: Caller
    ) -> pb.BatchGetSpacesResponse:
        check = Validator()
        count = len(request.space_ids)
        check.check(1 <= count <= MAX_BATCH, "space_ids", f"1 to {MAX_BATCH} ids (got {count})")
        check.raise_if_any("BatchGetSpaces needs 1 to 100 Space ids")
        wanted = list(dict.fromkeys(require_id(i, "space_ids") for i in request.space_ids))
        found = await self.directory.get_many(wanted)
        return pb.BatchGetSpacesResponse(
            spaces=[found[i] for i in wanted if i in found],
            missing_space_ids=[i for i in wanted if i not in found],
        )

    @unary
    async def SubscribeToSpace(
        self, request: pb.SubscribeToSpaceRequest, caller: Caller
    ) -> pb.SubscribeToSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id,
            cmd.SubscribeToSpace(space_id=space_id),
            caller,
            request,
            "SubscribeToSpace",
            pb.SubscribeToSpaceResponse,
        )

    @unary
    async def UnsubscribeFromSpace(
        self, request: pb.UnsubscribeFromSpaceRequest, caller: Caller
    ) -> pb.UnsubscribeFromSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id,
            cmd.UnsubscribeFromSpace(space_id=space_id),
            caller,
            request,
            "UnsubscribeFromSpace",
            pb.UnsubscribeFromSpaceResponse,
        )

    @unary
    async def StartSpace(self, request: pb.StartSpaceRequest, caller: Caller) -> pb.StartSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id, cmd.StartSpace(space_id=space_id), caller, request, "StartSpace", pb.StartSpaceResponse
        )

    @unary
    async def EndSpace(self, request: pb.EndSpaceRequest, caller: Caller) -> pb.EndSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id, cmd.EndSpace(space_id=space_id), caller, request, "EndSpace", pb.EndSpaceResponse
        )

    @unary
    async def CancelSpace(self, request: pb.CancelSpaceRequest, caller: Caller) -> pb.CancelSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id,
            cmd.CancelSpace(space_id=space_id),
            caller,
            request,
            "CancelSpace",
            pb.CancelSpaceResponse,
        )

    # Membership

    @unary
    async def JoinSpace(self, request: pb.JoinSpaceRequest, caller: Caller) -> pb.JoinSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        with self.limits.charge(JOIN, caller.user_id):
            barred, blocked_by = await self.moderation.bars(space_id, caller.user_id)
            link_id = (
                self.invite_links.link_id_for(request.invite_token, space_id)
                if request.invite_token
                else None
            )

            def respond(state: Space, _events):
                return pb.JoinSpaceResponse(space=space_view(state), role=state.role_of(caller.user_id))

            return await self.commands.run(
                space_id,
                cmd.JoinSpace(
                    space_id=space_id,
                    invite_link_id=link_id,
                    barred=barred,
                    blocked_by=blocked_by,
                ),
                caller,
                method="JoinSpace",
                request=request,
                request_id=request.request_id,
                respond=respond,
                response_type=pb.JoinSpaceResponse,
            )

    @unary
    async def LeaveSpace(self, request: pb.LeaveSpaceRequest, caller: Caller) -> pb.LeaveSpaceResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id, cmd.LeaveSpace(space_id=space_id), caller, request, "LeaveSpace", pb.LeaveSpaceResponse
        )

    @unary
    async def ListParticipants(
        self, request: pb.ListParticipantsRequest, caller: Caller
    ) -> pb.ListParticipantsResponse:
        space_id = require_id(request.space_id, "space_id")
        page = parse_page(request.page_size, request.page_token, space_id)
        state = await self._existing(space_id, self.commands.read)
        everyone = participants_in_order(state)
        people, next_token = paginate(everyone, page, place)
        return pb.ListParticipantsResponse(
            participants=[participant_message(p) for _, p in people],
            next_page_token=next_token,
            total_size=len(everyone),
        )

    @unary
    async def GetParticipant(
        self, request: pb.GetParticipantRequest, caller: Caller
    ) -> pb.GetParticipantResponse:
        space_id = require_id(request.space_id, "space_id")
        user_id = require_id(request.user_id, "user_id")
        state = await self._existing(space_id, lambda space: self.commands.read_about(space, user_id))
        participant = participant_view(state, user_id)
        if participant is None:
            raise NotFound(
                f"user {user_id!r} is not in space {space_id!r}", reason=Reason.PARTICIPANT_NOT_FOUND
            )
        return pb.GetParticipantResponse(participant=participant)

    # Invites

    @unary
    async def InviteUsers(self, request: pb.InviteUsersRequest, caller: Caller) -> pb.InviteUsersResponse:
        space_id = require_id(request.space_id, "space_id")
        with self.limits.charge(INVITE, caller.user_id):
            command = cmd.InviteUsers(space_id=space_id, user_ids=tuple(request.user_ids))
            return await self._mutate(
                space_id, command, caller, request, "InviteUsers", pb.InviteUsersResponse
            )

    @unary
    async def CreateInviteLink(
        self, request: pb.CreateInviteLinkRequest, caller: Caller
    ) -> pb.CreateInviteLinkResponse:
        space_id = require_id(request.space_id, "space_id")
        with self.limits.charge(INVITE, caller.user_id):
            ttl = duration_field(request.ttl, "ttl") if request.HasField("ttl") else self.default_link_ttl
            check = Validator()
            check.check(ttl > timedelta(0), "ttl", "must be positive")
            check.check(ttl <= MAX_INVITE_LINK_TTL, "ttl", "must be at most 7 days")
            check.raise_if_any()
            link_id = new_id()
            expires_at = self.commands.clock() + ttl

            def respond(_state: Space, _events):
                link = self.invite_links.issue(space_id, link_id, expires_at)
                response = pb.CreateInviteLinkResponse(link_id=link.link_id, token=link.token, url=link.url)
                response.expires_at.FromDatetime(link.expires_at)
                return response

            return await self.commands.run(
                space_id,
                cmd.CreateInviteLink(space_id=space_id, link_id=link_id, expires_at=expires_at),
                caller,
                method="CreateInviteLink",
                request=request,
                request_id=request.request_id,
                respond=respond,
                response_type=pb.CreateInviteLinkResponse,
            )

    # Roles

    @unary
    async def AddCoHost(self, request: pb.AddCoHostRequest, caller: Caller) -> pb.AddCoHostResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.AddCoHost(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(space_id, command, caller, request, "AddCoHost", pb.AddCoHostResponse)

    @unary
    async def RemoveCoHost(self, request: pb.RemoveCoHostRequest, caller: Caller) -> pb.RemoveCoHostResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.RemoveCoHost(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(space_id, command, caller, request, "RemoveCoHost", pb.RemoveCoHostResponse)

    @unary
    async def InviteToSpeak(
        self, request: pb.InviteToSpeakRequest, caller: Caller
    ) -> pb.InviteToSpeakResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.InviteToSpeak(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(
            space_id, command, caller, request, "InviteToSpeak", pb.InviteToSpeakResponse
        )

    @unary
    async def RevokeSpeaker(
        self, request: pb.RevokeSpeakerRequest, caller: Caller
    ) -> pb.RevokeSpeakerResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.RevokeSpeaker(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(
            space_id, command, caller, request, "RevokeSpeaker", pb.RevokeSpeakerResponse
        )

    @unary
    async def StepDown(self, request: pb.StepDownRequest, caller: Caller) -> pb.StepDownResponse:
        space_id = require_id(request.space_id, "space_id")
        return await self._mutate(
            space_id, cmd.StepDown(space_id=space_id), caller, request, "StepDown", pb.StepDownResponse
        )

    # Requests to speak

    @unary
    async def RequestToSpeak(
        self, request: pb.RequestToSpeakRequest, caller: Caller
    ) -> pb.RequestToSpeakResponse:
        space_id = require_id(request.space_id, "space_id")
        with self.limits.charge(SPEAK_REQUEST, caller.user_id):

            def respond(state: Space, _events):
                queue = [r.user_id for r in speak_requests_view(state)]
                position = queue.index(caller.user_id) + 1 if caller.user_id in queue else 0
                return pb.RequestToSpeakResponse(position=position)

            return await self.commands.run(
                space_id,
                cmd.RequestToSpeak(space_id=space_id),
                caller,
                method="RequestToSpeak",
                request=request,
                request_id=request.request_id,
                respond=respond,
                response_type=pb.RequestToSpeakResponse,
            )

    @unary
    async def WithdrawSpeakRequest(
        self, request: pb.WithdrawSpeakRequestRequest, caller: Caller
    ) -> pb.WithdrawSpeakRequestResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.WithdrawSpeakRequest(space_id=space_id)
        return await self._mutate(
            space_id, command, caller, request, "WithdrawSpeakRequest", pb.WithdrawSpeakRequestResponse
        )

    @unary
    async def ListSpeakRequests(
        self, request: pb.ListSpeakRequestsRequest, caller: Caller
    ) -> pb.ListSpeakRequestsResponse:
        space_id = require_id(request.space_id, "space_id")
        page = parse_page(request.page_size, request.page_token, space_id)
        state = await self._existing(space_id)
        if not state.is_manager(caller.user_id):
            raise PermissionDenied(
                "only the host and co-hosts can list requests to speak", reason=Reason.NOT_HOST_OR_CO_HOST
            )
        requests, next_token = paginate(speak_requests_view(state), page, speak_request_key)
        return pb.ListSpeakRequestsResponse(requests=requests, next_page_token=next_token)

    @unary
    async def ApproveSpeakRequest(
        self, request: pb.ApproveSpeakRequestRequest, caller: Caller
    ) -> pb.ApproveSpeakRequestResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.ApproveSpeakRequest(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(
            space_id, command, caller, request, "ApproveSpeakRequest", pb.ApproveSpeakRequestResponse
        )

    @unary
    async def DenySpeakRequest(
        self, request: pb.DenySpeakRequestRequest, caller: Caller
    ) -> pb.DenySpeakRequestResponse:
        space_id = require_id(request.space_id, "space_id")
        command = cmd.DenySpeakRequest(space_id=space_id, user_id=require_id(request.user_id, "user_id"))
        return await self._mutate(
            space_id, command, caller, request, "DenySpeakRequest", pb.DenySpeakRequestResponse
        )

    # Media

    @unary(callers=USERS_AND_GATEWAYS)  # a gateway looks up the relay it subscribes to
    async def GetMediaEndpoint(
        self, request: pb.GetMediaEndpointRequest, caller: Caller
    ) -> pb.GetMediaEndpointResponse:
        """The relay serving the Space: consistent hashing of its id over the configured relays."""
        space_id = require_id(request.space_id, "space_id")
        await self._existing(space_id)
        relay = self.media_relays.node_for(space_id)
        return pb.GetMediaEndpointResponse(address=relay.address, relay_id=relay.node_id)
