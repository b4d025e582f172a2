"""The gateway's HTTP face: the web client, a JSON API over Podium's gRPC calls, WebRTC signalling.

    GET  /                                      the web client (services/gateway/web)
    POST /api/sign-in         {"userId"}        a development token for a named user (dev only)
    POST /api/rpc/{service}/{method}  {...}     one allowed Podium call, with the caller's token
    POST /api/spaces/{id}/listen {sdp, type, inviteToken}   join, and the Space's audio
    POST /api/spaces/{id}/speak  {sdp, type}    the microphone, published while allowed
    GET  /api/spaces/{id}/watch                 WebSocket: WatchSpace as JSON (first message: the token)
    GET  /api/replays/{id}/audio                the replay's Ogg Opus file (DownloadReplay)
    GET  /api/ice-servers                       the signed-in user's RTCIceServer list (TURN credentials
                                                minted for them, time-limited)

The browser holds the user's token and sends it as `Authorization: Bearer`;
the gateway passes it on unchanged, so every service decides for itself. A
failed call answers with the HTTP status its gRPC status maps to and
`{"code", "message", "reason"}` (reason: the service's `ErrorInfo`, when it gave one).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc
from aiohttp import WSMsgType, web
from google.protobuf import json_format

from libs.auth.tokens import InvalidToken, TokenVerifier, mint_token
from libs.domain.errors import InvalidArgument
from libs.grpckit.validation import require_id
from podium.presence.v1 import presence_service_pb2
from podium.replay.v1 import replay_service_pb2
from services.gateway.application.ice_servers import IceServerSource
from services.gateway.application.sessions import BadOffer, Offer, Sessions
from services.gateway.domain.errors import error_reason, http_status
from services.gateway.infrastructure.podium import PodiumClients, bearer

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEV_TOKEN_TTL_SECONDS = 12 * 3600

# What the page may call through /api/rpc: a person's own actions, each with their own token.
ALLOWED = {
    "room": {
        "CreateSpace", "GetSpace", "StartSpace", "EndSpace", "CancelSpace", "LeaveSpace",
        "ListParticipants", "CreateInviteLink", "InviteToSpeak", "RevokeSpeaker", "StepDown",
        "RequestToSpeak", "WithdrawSpeakRequest", "ListSpeakRequests", "ApproveSpeakRequest",
        "DenySpeakRequest", "ListSpaces",
    },
    "moderation": {"MuteParticipant", "UnmuteParticipant", "RemoveParticipant"},
    "replay": {"GetReplay", "ListReplays"},
}  # fmt: skip


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, reason: str = "") -> web.Response:
    body = {"code": code, "message": message} | ({"reason": reason} if reason else {})
    return web.json_response(body, status=status)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except HttpError as e:
        return _error(e.status, e.code, e.message)
    except grpc.aio.AioRpcError as e:
        return _error(http_status(e.code()), e.code().name, e.details() or "", error_reason(e))
    except (InvalidArgument, BadOffer) as e:
        return _error(400, "INVALID_ARGUMENT", str(e))


class HttpApi:
    def __init__(
        self,
        sessions: Sessions,
        clients: PodiumClients,
        verifier: TokenVerifier,
        *,
        dev_sign_in_key: str | None,
        audience: str,
        key_id: str,
        ice_servers: IceServerSource | None = None,
    ):
        self.ice_servers = ice_servers or IceServerSource((), "", 60)
        self.sessions = sessions
        self.clients = clients
        self.verifier = verifier
        self.dev_sign_in_key = dev_sign_in_key
        self.audience = audience
        self.key_id = key_id

    def app(self) -> web.Application:
        app = web.Application(middlewares=[errors], client_max_size=256 * 1024)
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/healthz", self.healthz),
                web.post("/api/sign-in", self.sign_in),
                web.post("/api/rpc/{service}/{method}", self.rpc),
                web.post("/api/spaces/{space_id}/listen", self.listen),
                web.post("/api/spaces/{space_id}/speak", self.speak),
                web.get("/api/spaces/{space_id}/watch", self.watch),
                web.get("/api/replays/{space_id}/audio", self.replay_audio),
                web.get("/api/ice-servers", self.ice_servers_for_user),
                web.static("/static", WEB_DIR),
            ]
        )
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HttpError(400, "INVALID_ARGUMENT", f"the body must be a JSON object: {e}") from e
        if not isinstance(body, dict):
            raise HttpError(400, "INVALID_ARGUMENT", "the body must be a JSON object")
        return body

    def _user(self, token: str) -> str:
        """The user a token names, checked here too: the gateway keys streams and presence by it."""
        try:
            identity = self.verifier.verify(token)
        except InvalidToken as e:
            raise HttpError(401, "UNAUTHENTICATED", str(e)) from e
        if identity.is_gateway:
            raise HttpError(403, "PERMISSION_DENIED", "a gateway token cannot act as a user")
        return identity.user_id

    @staticmethod
    def _token(request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, "UNAUTHENTICATED", "send 'Authorization: Bearer <token>' (sign in first)")
        return token.strip()

    async def sign_in(self, request: web.Request) -> web.Response:
        if self.dev_sign_in_key is None:
            raise HttpError(404, "NOT_FOUND", "development sign-in is off on this gateway")
        user_id = require_id(str((await self._body(request)).get("userId", "")), "userId")
        token = mint_token(
            self.dev_sign_in_key,
            user_id,
            audience=self.audience,
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
            key_id=self.key_id or None,
        )
        return web.json_response({"userId": user_id, "token": token})

    async def rpc(self, request: web.Request) -> web.Response:
        service, method = request.match_info["service"], request.match_info["method"]
        if method not in ALLOWED.get(service, ()):
            raise HttpError(404, "NOT_FOUND", f"no call {service}/{method} here")
        token = self._token(request)
        messages = self.clients.messages[service]
        try:
            message = json_format.ParseDict(
                await self._body(request), getattr(messages, f"{method}Request")()
            )
        except json_format.ParseError as e:
            raise HttpError(400, "INVALID_ARGUMENT", str(e)) from e
        reply = await getattr(self.clients.stub(service), method)(message, metadata=bearer(token), timeout=15)
        return web.json_response(json_format.MessageToDict(reply))

    async def _offer(self, request: web.Request) -> tuple[dict, Offer]:
        body = await self._body(request)
        sdp, kind = body.get("sdp"), body.get("type")
        if not isinstance(sdp, str) or kind != "offer":
            raise HttpError(400, "INVALID_ARGUMENT", "send the browser's offer: {sdp, type: 'offer'}")
        return body, Offer(sdp, kind)

    async def listen(self, request: web.Request) -> web.Response:
        token = self._token(request)
        user_id = self._user(token)
        space_id = require_id(request.match_info["space_id"], "space_id")
        body, offer = await self._offer(request)
        invite = body.get("inviteToken") or ""
        if not isinstance(invite, str):
            raise HttpError(400, "INVALID_ARGUMENT", "inviteToken must be a string")
        answer = await self.sessions.listen(user_id, token, space_id, invite, offer)
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "role": answer.role})

    async def speak(self, request: web.Request) -> web.Response:
        token = self._token(request)
        user_id = self._user(token)
        space_id = require_id(request.match_info["space_id"], "space_id")
        _, offer = await self._offer(request)
        answer = await self.sessions.speak(user_id, token, space_id, offer)
        return web.json_response({"sdp": answer.sdp, "type": answer.type})

    async def watch(self, request: web.Request) -> web.WebSocketResponse:
        """WatchSpace for the browser. Browsers cannot set headers on a WebSocket, so the first
        message carries the token (never the URL, which logs and proxies keep)."""
        space_id = require_id(request.match_info["space_id"], "space_id")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        first = await ws.receive(timeout=10)
        if first.type != WSMsgType.TEXT:
            await ws.close(code=4400, message=b'first message: {"token": ...}')
            return ws
        try:
            token = str(json.loads(first.data).get("token", ""))
            self._user(token)
        except (HttpError, ValueError, AttributeError):
            await ws.close(code=4401, message=b"invalid token")
            return ws
        call = self.clients.presence.WatchSpace(
            presence_service_pb2.WatchSpaceRequest(space_id=space_id), metadata=bearer(token)
        )
        try:
            async for update in call:
                await ws.send_str(json.dumps(json_format.MessageToDict(update)))
        except grpc.aio.AioRpcError as e:
            if not ws.closed:
                await ws.send_str(json.dumps({"error": {"code": e.code().name, "message": e.details()}}))
        except ConnectionResetError:
            pass
        finally:
            call.cancel()
            await ws.close()
        return ws

    async def ice_servers_for_user(self, request: web.Request) -> web.Response:
        """What the page's RTCPeerConnection takes as `iceServers`; never cached, since the TURN
        credentials in it expire."""
        user_id = self._user(self._token(request))
        servers = [server.as_dict() for server in self.ice_servers.for_user(user_id)]
        return web.json_response({"iceServers": servers}, headers={"Cache-Control": "no-store"})

    async def replay_audio(self, request: web.Request) -> web.StreamResponse:
        token = self._token(request)
        space_id = require_id(request.match_info["space_id"], "space_id")
        call = self.clients.replay.DownloadReplay(
            replay_service_pb2.DownloadReplayRequest(space_id=space_id), metadata=bearer(token), timeout=60
        )
        response: web.StreamResponse | None = None
        async for chunk in call:  # the first chunk's status decides the HTTP status, so read it first
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": "audio/ogg"})
                response.content_length = chunk.total_size
                await response.prepare(request)
            await response.write(chunk.chunk)
        if response is None:
            raise HttpError(404, "NOT_FOUND", f"replay {space_id} is empty")
        await response.write_eof()
        return response
