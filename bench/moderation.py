"""Moderation to visible: `python -m bench.moderation`.

How long from an acknowledged MuteParticipant or RemoveParticipant until every
other service's view shows it, and how long the calls themselves take (a removal is
answered once the room has the bar, ADR 0014). Measured at the end of the longest chain, the
presence service's WatchSpace stream:

- mute:   moderation event -> presence board -> `UPDATED muted=true`;
- remove: moderation event -> room takes the user out (its own event) ->
          presence board -> `LEFT`. Seeing it in presence implies the room has it.

Operations are sent open loop at a fixed rate, alternating mutes and removals
over many live Spaces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import grpc

from bench.commands import percentile
from bench.stack import BenchStack, run_header
from libs.auth.tokens import mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from podium.moderation.v1 import moderation_service_pb2 as mpb
from podium.moderation.v1 import moderation_service_pb2_grpc
from podium.presence.v1 import presence_service_pb2 as ppb
from podium.presence.v1 import presence_service_pb2_grpc
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_service_pb2_grpc


def md(user: str):
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user)}"),)


async def main(args) -> dict:
    async with BenchStack() as stack:
        room = await stack.start("room")
        moderation = await stack.start("moderation")
        presence = await stack.start("presence")
        rooms = room_service_pb2_grpc.RoomServiceStub(grpc.aio.insecure_channel(room.address))
        mods = moderation_service_pb2_grpc.ModerationServiceStub(
            grpc.aio.insecure_channel(moderation.address)
        )
        watch = presence_service_pb2_grpc.PresenceServiceStub(grpc.aio.insecure_channel(presence.address))

        spaces = []
        for s in range(args.spaces):
            host = f"host-{s}"
            space_id = (
                await rooms.CreateSpace(rpb.CreateSpaceRequest(title=f"bench {s}"), metadata=md(host))
            ).space.space_id
            await rooms.StartSpace(rpb.StartSpaceRequest(space_id=space_id), metadata=md(host))
            speakers = [f"speaker-{s}-{i}" for i in range(args.speakers)]
            listeners = [f"listener-{s}-{i}" for i in range(args.listeners)]
            for user in speakers + listeners:
                await rooms.JoinSpace(rpb.JoinSpaceRequest(space_id=space_id), metadata=md(user))
            for speaker in speakers:
                await rooms.InviteToSpeak(
                    rpb.InviteToSpeakRequest(space_id=space_id, user_id=speaker), metadata=md(host)
                )
            spaces.append((space_id, host, speakers, listeners))

        seen: dict[tuple[str, str, str], float] = {}  # (space, user, what) -> when presence showed it
        streams = []

        async def follow(space_id: str) -> None:
            stream = watch.WatchSpace(ppb.WatchSpaceRequest(space_id=space_id), metadata=md("bench-gateway"))
            streams.append(stream)
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await _follow_stream(stream, space_id)

        async def _follow_stream(stream, space_id: str) -> None:
            async for update in stream:
                if update.WhichOneof("update") != "change":
                    continue
                member, kind = update.change.member, update.change.kind
                if kind == pt.MEMBER_CHANGE_KIND_LEFT:
                    seen.setdefault((space_id, member.user_id, "remove"), time.time())
                elif member.muted:
                    seen.setdefault((space_id, member.user_id, "mute"), time.time())

        followers = [asyncio.create_task(follow(space_id)) for space_id, *_ in spaces]
        await asyncio.sleep(3.0)  # every view caught up with the setup; watchers attached

        acked: dict[tuple[str, str, str], float] = {}
        operations = []
        for i in range(args.operations):
            space_id, host, speakers, listeners = spaces[i % len(spaces)]
            if (i // len(spaces)) % 2 == 0:
                operations.append(((space_id, speakers.pop(), "mute"), host))
            else:
                operations.append(((space_id, listeners.pop(), "remove"), host))

        async def do(key, host) -> None:
            space_id, user, what = key
            sent[key] = time.time()
            if what == "mute":
                await mods.MuteParticipant(
                    mpb.MuteParticipantRequest(space_id=space_id, user_id=user), metadata=md(host)
                )
            else:
                await mods.RemoveParticipant(
                    mpb.RemoveParticipantRequest(space_id=space_id, user_id=user, reason="bench"),
                    metadata=md(host),
                )
            acked[key] = time.time()

        sent: dict = {}
        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), []
        for n, (key, host) in enumerate(operations):
            delay = start + n / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(do(key, host)))
        await asyncio.gather(*tasks)
        deadline = loop.time() + 15
        while len([k for k in acked if k in seen]) < len(acked) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for stream in streams:
            stream.cancel()
        for follower in followers:
            follower.cancel()

        result = {
            **run_header(),
            "spaces": args.spaces,
            "operations": args.operations,
            "rate_per_s": args.rate,
        }
        for what in ("mute", "remove"):
            keys = [k for k in acked if k[2] == what]
            delays = [seen[k] - acked[k] for k in keys if k in seen]
            result[what] = {
                "acknowledged": len(keys),
                "visible": len(delays),
                "p50_ms": round(percentile(delays, 0.5) * 1000, 1),
                "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
                # How long the call itself takes: a removal is answered once the room has the bar.
                "call_p50_ms": round(percentile([acked[k] - sent[k] for k in keys], 0.5) * 1000, 1),
                "call_p99_ms": round(percentile([acked[k] - sent[k] for k in keys], 0.99) * 1000, 1),
            }
        return result


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spaces", type=int, default=20)
    parser.add_argument("--listeners", type=int, default=5, help="listeners per Space (removal targets)")
    parser.add_argument("--speakers", type=int, default=5, help="speakers per Space (mute targets)")
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="operations per second")
    print(json.dumps(run(main(parser.parse_args()), "uvloop"), indent=2))


if __name__ == "__main__":
    cli()
