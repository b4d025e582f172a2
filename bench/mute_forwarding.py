"""Mute to forwarding stopped, end to end: `python -m bench.mute_forwarding`.

A room, a moderation and a media-relay process, `--spaces` live Spaces with
`--speakers` speakers each, and one gateway subscribed to every Space. Hosts
mute their speakers open loop, `--rate` mutes/s in a fixed order. Each speaker
publishes 20 ms frames (80 bytes, on its own schedule, never waiting) from one
second before its mute until one second after. For every mute:

- **stopped after ack**: the relay's stamp (`relayed_at`) on the last frame of
  that speaker the gateway received, minus the time the MuteParticipant call
  returned (same machine clock). This covers commit, outbox relay, broker,
  the relay's projection and its admission check. Negative when the relay had
  already stopped before the caller heard the acknowledgement.
- **stopped after the event reached the relay**: the relay's own log line for
  the first frame it refused after the change (`after_event_ms`).
- the speaker's `PublishResponse.frames_refused` shows forwarding did stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.commands import percentile
from bench.stack import BenchStack, run_header
from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.runtime import run
from libs.config.settings import DEV_JWT_SECRET
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_service_pb2_grpc
from podium.media.v1 import media_types_pb2 as mt
from podium.moderation.v1 import moderation_service_pb2 as mpb
from podium.moderation.v1 import moderation_service_pb2_grpc
from podium.room.v1 import room_service_pb2 as rpb
from podium.room.v1 import room_service_pb2_grpc

FRAME_SECONDS = 0.02
OPUS = bytes(range(80))
_TOKENS: dict[str, tuple] = {}


def md(user: str):
    if user not in _TOKENS:
        _TOKENS[user] = (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, user, ttl_seconds=3600)}"),)
    return _TOKENS[user]


def gateway_md(gateway_id: str):
    """A listener gateway subscribes with its own gateway token."""
    return (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, gateway_id, roles=[GATEWAY_ROLE])}"),)


def frame(space_id: str, speaker: str, seq: int) -> pb.PublishRequest:
    ns = time.time_ns()
    return pb.PublishRequest(
        frame=mt.AudioFrame(
            space_id=space_id,
            speaker_id=speaker,
            sequence=seq,
            captured_at=Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000),
            audio_level_dbov=-20,
            opus=OPUS,
        )
    )


async def admitted(relay, space_id: str, speaker: str, deadline: float) -> None:
    """Waits until the relay's view lets `speaker` publish in `space_id`."""
    while True:
        call = relay.Publish(metadata=md(speaker))
        try:
            await call.write(frame(space_id, speaker, 0))
            await call.done_writing()
            await call
            return
        except grpc.aio.AioRpcError:
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def main(args) -> dict:
    relay_env = {"PODIUM_LOG_LEVEL": "INFO", "PODIUM_LOG_FORMAT": "text"}
    async with BenchStack() as stack:
        room = await stack.start("room")
        moderation = await stack.start("moderation")
        relay_process = await stack.start("media-relay", relay_env)
        rooms = room_service_pb2_grpc.RoomServiceStub(grpc.aio.insecure_channel(room.address))
        mods = moderation_service_pb2_grpc.ModerationServiceStub(
            grpc.aio.insecure_channel(moderation.address)
        )
        relay_channel = grpc.aio.insecure_channel(relay_process.address)
        relay = media_service_pb2_grpc.MediaRelayServiceStub(relay_channel)

        spaces = []
        for s in range(args.spaces):
            host = f"mute-host-{s}"
            space_id = (
                await rooms.CreateSpace(rpb.CreateSpaceRequest(title=f"mute {s}"), metadata=md(host))
            ).space.space_id
            await rooms.StartSpace(rpb.StartSpaceRequest(space_id=space_id), metadata=md(host))
            speakers = [f"mute-spk-{s}-{i}" for i in range(args.speakers)]
            for user in speakers:
                await rooms.JoinSpace(rpb.JoinSpaceRequest(space_id=space_id), metadata=md(user))
                await rooms.InviteToSpeak(
                    rpb.InviteToSpeakRequest(space_id=space_id, user_id=user), metadata=md(host)
                )
            spaces.append((space_id, host, speakers))
        deadline = time.time() + 60
        for space_id, _, speakers in spaces:
            await admitted(relay, space_id, speakers[-1], deadline)

        last_relayed: dict[str, float] = {}

        async def gateway(space_id: str) -> None:
            call = relay.Subscribe(
                pb.SubscribeRequest(space_id=space_id, gateway_id=f"gw-{space_id[:8]}"),
                metadata=gateway_md("gw"),
            )
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                async for message in call:
                    for f in message.frames:
                        at = f.relayed_at.seconds + f.relayed_at.nanos * 1e-9
                        if at > last_relayed.get(f.speaker_id, 0.0):
                            last_relayed[f.speaker_id] = at

        gateways = [asyncio.create_task(gateway(space_id)) for space_id, *_ in spaces]
        await asyncio.sleep(1.0)

        plan = [(space_id, host, spk) for space_id, host, speakers in spaces for spk in speakers]
        plan = sorted(plan, key=lambda p: (p[2].rsplit("-", 1)[1], p[0]))  # spread over Spaces
        acked: dict[str, float] = {}
        refused: dict[str, int] = {}
        errors: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        start = time.time() + 1.5

        async def speak(space_id: str, speaker: str, begin: float, end: float) -> None:
            call = relay.Publish(metadata=md(speaker))
            seq = 1
            while (due := begin + seq * FRAME_SECONDS) < end:
                if (delay := due - time.time()) > 0:
                    await asyncio.sleep(delay)
                await call.write(frame(space_id, speaker, seq))
                seq += 1
            await call.done_writing()
            refused[speaker] = (await call).frames_refused

        async def mute(space_id: str, host: str, speaker: str) -> None:
            try:
                await mods.MuteParticipant(
                    mpb.MuteParticipantRequest(space_id=space_id, user_id=speaker), metadata=md(host)
                )
                acked[speaker] = time.time()
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] = errors.get(e.code().name, 0) + 1

        tasks = []
        for i, (space_id, _host, speaker) in enumerate(plan):
            due = start + i / args.rate
            tasks.append(asyncio.create_task(speak(space_id, speaker, due - 1.0, due + 1.0)))
        for i, (space_id, host, speaker) in enumerate(plan):
            due = start + i / args.rate
            if (delay := due - time.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(mute(space_id, host, speaker)))
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.3)
        for g in gateways:
            g.cancel()
        await asyncio.gather(*gateways, return_exceptions=True)
        await relay_channel.close()
        del loop

        after_ack = [last_relayed[s] - acked[s] for s in acked if s in last_relayed]
        log = relay_process.log_path.read_text(errors="replace") if relay_process.log_path else ""
        after_event = [
            float(v)
            for v in re.findall(
                r"forwarding stopped: space=\S+ speaker=\S+ reason=\w*MUTED after_event_ms=(-?[\d.]+)", log
            )
        ]
        return {
            **run_header(),
            "spaces": args.spaces,
            "speakers_per_space": args.speakers,
            "mute_rate_per_s": args.rate,
            "mutes_planned": len(plan),
            "mutes_acknowledged": len(acked),
            "errors": errors,
            "speakers_with_frames_refused": sum(1 for s in acked if refused.get(s, 0) > 0),
            "stopped_after_ack_ms": {
                "count": len(after_ack),
                "p50": round(percentile(after_ack, 0.5) * 1000, 1),
                "p99": round(percentile(after_ack, 0.99) * 1000, 1),
                "max": round(max(after_ack, default=float("nan")) * 1000, 1),
            },
            "stopped_after_event_reached_relay_ms": {
                "count": len(after_event),
                "p50": round(percentile(after_event, 0.5), 1),
                "p99": round(percentile(after_event, 0.99), 1),
                "max": round(max(after_event, default=float("nan")), 1),
            },
        }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spaces", type=int, default=20)
    parser.add_argument("--speakers", type=int, default=5, help="speakers per Space, each muted once")
    parser.add_argument("--rate", type=float, default=5, help="mutes per second")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(run(main(parse_args()), "uvloop"), indent=2))
