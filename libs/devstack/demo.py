"""The demo: a realistic Space driven over gRPC, and its timeline read back from the services.

A host creates and starts a Space; four listeners join (their gateway reports
their connections to presence); one asks to speak and is approved; a co-host
is added; the host mutes the speaker and removes a troll, whose rejoin is
refused; someone leaves; the host ends it. After each step the timeline
records what the services now say (room: GetSpace, ListParticipants,
ListSpeakRequests; presence: the WatchSpace snapshot with mutes and the live
listener count), not what the demo believes it did.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc

from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.grpckit.channels import ClientTls, dial
from podium.moderation.v1 import moderation_service_pb2 as mpb
from podium.moderation.v1 import moderation_service_pb2_grpc
from podium.presence.v1 import presence_service_pb2 as ppb
from podium.presence.v1 import presence_service_pb2_grpc
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_service_pb2 as pb
from podium.room.v1 import room_service_pb2_grpc
from podium.room.v1 import room_types_pb2 as types

GATEWAY = "demo-gateway"


@dataclass
class Step:
    actor: str
    action: str
    state: str
    participants: list[str]
    requests: list[str]
    muted: list[str] = field(default_factory=list)
    listening: int | None = None  # connected right now, as presence counts them


@dataclass
class Timeline:
    space_id: str = ""
    steps: list[Step] = field(default_factory=list)


def _role(role: int) -> str:
    return types.Role.Name(role).removeprefix("ROLE_").lower().replace("_", "-")


class _Person:
    def __init__(self, secret: str, user_id: str, room, moderation=None):
        self.user_id = user_id
        self.room = room
        self.moderation = moderation
        self.metadata = (("authorization", f"Bearer {mint_token(secret, user_id)}"),)

    async def __call__(self, method: str, **fields):
        request = getattr(pb, f"{method}Request")(**fields)
        return await getattr(self.room, method)(request, metadata=self.metadata, timeout=10)

    async def moderate(self, method: str, **fields):
        request = getattr(mpb, f"{method}Request")(**fields)
        return await getattr(self.moderation, method)(request, metadata=self.metadata, timeout=10)


async def _eventually(call, attempts: int = 100):
    """Moderation learns roles from the room's events; retry while it catches up."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except grpc.aio.AioRpcError as e:
            if e.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                raise
        await asyncio.sleep(0.05)
    return await call()


async def run_demo(
    room_address: str,
    secret: str,
    moderation_address: str = "",
    presence_address: str = "",
    tls: ClientTls | None = None,
) -> Timeline:
    """`tls`: how to reach the services when they serve TLS (plaintext when None)."""
    channels = [dial(a, tls) for a in (room_address, moderation_address, presence_address) if a]
    try:
        return await _drive(channels, secret, bool(moderation_address), bool(presence_address))
    finally:
        for channel in channels:
            await channel.close()


async def _drive(channels, secret: str, with_moderation: bool, with_presence: bool) -> Timeline:
    room = room_service_pb2_grpc.RoomServiceStub(channels[0])
    moderation = moderation_service_pb2_grpc.ModerationServiceStub(channels[1]) if with_moderation else None
    presence = presence_service_pb2_grpc.PresenceServiceStub(channels[-1]) if with_presence else None
    # The demo's gateway reports presence with its own gateway token, and asks as the host.
    gateway_md = (("authorization", f"Bearer {mint_token(secret, GATEWAY, roles=[GATEWAY_ROLE])}"),)
    host_md = (("authorization", f"Bearer {mint_token(secret, 'maya')}"),)
    host, ana, ben, chen, dan = (
        _Person(secret, u, room, moderation) for u in ("maya", "ana", "ben", "chen", "dan")
    )
    timeline = Timeline()
    connected: set[str] = set()

    async def report_connections() -> None:
        if presence is None:
            return
        if connected:
            entries = [pt.PresenceEntry(user_id=u, space_id=timeline.space_id) for u in sorted(connected)]
            await presence.ReportPresence(
                ppb.ReportPresenceRequest(gateway_id=GATEWAY, entries=entries), metadata=gateway_md
            )

    async def board() -> ppb.WatchSpaceResponse | None:
        if presence is None:
            return None
        stream = presence.WatchSpace(ppb.WatchSpaceRequest(space_id=timeline.space_id), metadata=host_md)
        first = await stream.read()
        stream.cancel()
        return first

    async def record(actor: _Person, action: str, *, muted: set[str] | None = None) -> None:
        await report_connections()
        space = (await host("GetSpace", space_id=timeline.space_id)).space
        people = await host("ListParticipants", space_id=timeline.space_id)
        live = space.state == types.SPACE_STATE_LIVE
        requests = await host("ListSpeakRequests", space_id=timeline.space_id) if live else None
        snapshot = await board()
        for _ in range(100):  # presence applies heartbeats and mutes asynchronously: wait for them
            if snapshot is None:
                break
            mutes_shown = muted is None or {m.user_id for m in snapshot.snapshot.members if m.muted} == muted
            if mutes_shown and snapshot.snapshot.counts.current_listeners == len(connected):
                break
            await asyncio.sleep(0.05)
            snapshot = await board()
        timeline.steps.append(
            Step(
                actor=actor.user_id,
                action=action,
                state=types.SpaceState.Name(space.state).removeprefix("SPACE_STATE_").lower(),
                participants=[f"{p.user_id} ({_role(p.role)})" for p in people.participants],
                requests=[r.user_id for r in requests.requests] if requests else [],
                muted=sorted(m.user_id for m in snapshot.snapshot.members if m.muted) if snapshot else [],
                listening=snapshot.snapshot.counts.current_listeners if snapshot else None,
            )
        )

    created = await host("CreateSpace", title="Podium demo: building in public", recording_enabled=True)
    timeline.space_id = created.space.space_id
    await record(host, f"creates the Space {created.space.title!r}")
    await host("StartSpace", space_id=timeline.space_id)
    connected.add(host.user_id)
    await record(host, "starts the Space")
    for listener in (ana, ben, chen, dan):
        await listener("JoinSpace", space_id=timeline.space_id)
        connected.add(listener.user_id)
        await record(listener, "joins as a listener")
    place = await ana("RequestToSpeak", space_id=timeline.space_id)
    await record(ana, f"asks to speak (place {place.position} in the queue)")
    await host("ApproveSpeakRequest", space_id=timeline.space_id, user_id=ana.user_id)
    await record(host, "approves ana's request: ana is a speaker")
    await host("AddCoHost", space_id=timeline.space_id, user_id=ben.user_id)
    await record(host, "makes ben a co-host")
    if moderation is not None:
        await _eventually(
            lambda: host.moderate("MuteParticipant", space_id=timeline.space_id, user_id=ana.user_id)
        )
        await record(host, "mutes ana (a host mute: only a host or co-host can lift it)", muted={ana.user_id})
        await _eventually(
            lambda: host.moderate(
                "RemoveParticipant", space_id=timeline.space_id, user_id=dan.user_id, reason="spam"
            )
        )
        connected.discard(dan.user_id)
        for _ in range(100):  # the room carries out the removal when it reads moderation's event
            people = await host("ListParticipants", space_id=timeline.space_id)
            if dan.user_id not in {p.user_id for p in people.participants}:
                break
            await asyncio.sleep(0.05)
        await record(host, "removes dan for spam")
        try:
            await dan("JoinSpace", space_id=timeline.space_id)
            verdict = "was let back in (unexpected)"
        except grpc.aio.AioRpcError as refused:
            verdict = f"is refused: {refused.code().name}, {refused.details()}"
        await record(dan, f"tries to rejoin and {verdict}")
    await chen("LeaveSpace", space_id=timeline.space_id)
    connected.discard(chen.user_id)
    await record(chen, "leaves")
    await host("EndSpace", space_id=timeline.space_id)
    connected.clear()
    await record(host, "ends the Space")
    return timeline
