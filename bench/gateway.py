"""The reference gateway: mouth-to-ear latency between two real browsers, and CPU per listener.

    python -m bench.gateway [--onsets 100] [--listeners 20]

Against the real relay, room, presence and gateway processes, with two headless
Debian Chromium browsers driven by Playwright (as the web client's browser test):

1. **latency**: browser A (the host) speaks through a fake microphone playing a
   WAV of tone bursts (250 ms of 937.5 Hz, then 750 ms of silence); browser B
   listens. The same onset detector runs in both pages (a WebAudio analyser
   of 512 samples, whose bin 10 is the tone, polled every few ms): on A's
   microphone track, and on what B plays. Each onset's time is the wall clock
   (`performance.timeOrigin + performance.now()`; both browsers run on this
   machine), so B's onset minus A's is mouth-to-ear: A's WebRTC stack, the
   gateway (decode, encode, Publish), the relay, the gateway's fan-out, B's
   jitter buffer and decoder. The detectors' own delay cancels out.
2. **CPU per listener stream**: with A still speaking, the gateway's CPU time
   over a window with B alone, then with `--listeners` more listeners (aiortc
   peers in this process, each its own user); the difference over the added
   listeners, in percent of a core.

Beside them, from the gateway's /metrics: how old frames are when they come back
on Subscribe (captured_at, stamped as the speaker's gateway encodes them, to
receipt: Publish, the relay's tick, Subscribe), and how many frames took each
path (passed through as the relay's Opus, mixed, encoded from a microphone,
silence).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench.commands import percentile
from bench.stack import BenchStack, cpu_seconds, run_header
from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET
from libs.devstack.broker import free_port

TONE_HZ = 937.5  # bin 10 of a 512-point FFT at 48 kHz: the detector's bin is centred on it
ON_S, PERIOD_S = 0.25, 1.0

DETECTOR = """
([mode, bin]) => {
  const t = window.podiumTest;
  const stream = mode === "mic" ? t.state.mic : document.getElementById("live-audio").srcObject;
  const ctx = t.state.meter ? t.state.meter.analyser.context : new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  window.onsets = [];
  // An onset: the level crosses -45 dB after at least 300 ms below -70 dB. The analyser's window
  // is 512 samples (10.7 ms), so a burst's rising edge passes through the levels in between for a
  // few samples; only a stay there longer than an edge (noise) ends the quiet.
  let quietFrom = performance.now(); // start of the current quiet stretch; null while not quiet
  let lastQuiet = quietFrom; // the last sample below -70 dB
  let on = false;
  window.detector = setInterval(() => {
    analyser.getFloatFrequencyData(bins);
    const level = bins[bin];
    const now = performance.now();
    if (level < -70) {
      if (on || quietFrom === null) quietFrom = now;
      on = false;
      lastQuiet = now;
    } else if (!on && level > -45) {
      if (quietFrom !== null && lastQuiet - quietFrom > 300) window.onsets.push(performance.timeOrigin + now);
      on = true;
      quietFrom = null;
    } else if (!on && now - lastQuiet > 20) {
      quietFrom = null; // not an edge: something between the bursts
    }
  }, 2);
}
"""


def bursts_wav(path: Path, rate: int = 48_000) -> Path:
    t = np.arange(int(PERIOD_S * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * TONE_HZ * t) * (t < ON_S)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((tone * 32767).astype("<i2").tobytes())
    return path


def latencies(spoken: list[float], heard: list[float]) -> list[float]:
    """For each onset at A, the first at B within the period after it (ms)."""
    out = []
    for a in spoken:
        later = [b - a for b in heard if 0 <= b - a < PERIOD_S * 1000 * 0.9]
        if later:
            out.append(min(later))
    return out


def frame_paths(exposition: str) -> dict[str, float]:
    """podium_gateway_frames_total by path, from the gateway's /metrics."""
    out = {}
    for line in exposition.splitlines():
        if line.startswith("podium_gateway_frames_total{"):
            path = line.split('path="')[1].split('"')[0]
            out[path] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_quantile(exposition: str, q: float) -> float | None:
    """The upper bound of the bucket of podium_gateway_frame_age_seconds that holds quantile `q` (ms)."""
    buckets = []
    for line in exposition.splitlines():
        if line.startswith("podium_gateway_frame_age_seconds_bucket{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return round(bound * 1000, 1)
    return None


async def listener(session: aiohttp.ClientSession, url: str, space_id: str, user: str) -> RTCPeerConnection:
    """One more listener: an aiortc peer that joins and receives the Space's audio."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    drains = []

    @pc.on("track")
    def _track(track) -> None:
        async def drain() -> None:
            while True:
                await track.recv()

        drains.append(asyncio.ensure_future(drain()))

    await pc.setLocalDescription(await pc.createOffer())
    token = mint_token(DEV_JWT_SECRET, user)
    async with session.post(
        f"{url}/api/spaces/{space_id}/listen",
        json={"sdp": pc.localDescription.sdp, "type": "offer"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        answer = await response.json()
        if response.status != 200:
            raise RuntimeError(f"listen: {response.status} {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    pc.drains = drains
    return pc


async def main(args) -> dict:
    from playwright.async_api import async_playwright

    from tests.integration.gateway.browsers import CHROMIUM, chromium_args

    if not Path(CHROMIUM).exists():
        raise RuntimeError("the gateway benchmark needs Chromium: apt-get install -y chromium")

    work = Path(tempfile.mkdtemp(prefix="podium-bench-gateway-"))
    microphone = bursts_wav(work / "bursts.wav")
    silent = work / "silent.wav"
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(np.zeros(48_000, "<i2").tobytes())
    async with BenchStack() as stack, async_playwright() as playwright:
        relay = await stack.start("media-relay")
        presence = await stack.start("presence")
        room = await stack.start("room", env={"PODIUM_ROOM_MEDIA_RELAYS": f"relay-0={relay.address}"})
        http_port, metrics_port = free_port(), free_port()
        gateway = await stack.start(
            "gateway",
            env={
                "PODIUM_METRICS_PORT": str(metrics_port),
                "PODIUM_GATEWAY_HTTP_PORT": str(http_port),
                "PODIUM_GATEWAY_ROOM_ADDRESS": room.address,
                "PODIUM_GATEWAY_PRESENCE_ADDRESS": presence.address,
                # Neither moderation nor replay is called here: left out, their CPU stays out of the figures.
                "PODIUM_GATEWAY_MODERATION_ADDRESS": presence.address,
                "PODIUM_GATEWAY_REPLAY_ADDRESS": presence.address,
            },
        )
        url = f"http://127.0.0.1:{http_port}"
        executable = CHROMIUM
        speaker_browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=chromium_args(microphone)
        )
        listener_browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=chromium_args(silent)
        )
        try:
            a = await speaker_browser.new_page()
            b = await listener_browser.new_page()
            await a.goto(url)
            await a.get_by_test_id("user-id").fill("bench-host")
            await a.get_by_test_id("sign-in").click()
            await a.get_by_test_id("title").fill("Latency")
            await a.get_by_test_id("recording").uncheck()
            await a.get_by_test_id("create").click()
            await a.get_by_test_id("mic-state").filter(has_text="on").wait_for(timeout=30_000)
            await a.get_by_test_id("invite-link").click()
            await a.get_by_test_id("invite-url").wait_for()
            invite = await a.get_by_test_id("invite-url").input_value()
            space_id = invite.split("space=")[1].split("&")[0]
            await b.goto(invite)
            await b.get_by_test_id("user-id").fill("bench-listener")
            await b.get_by_test_id("sign-in").click()
            await b.get_by_test_id("join").click()
            await b.wait_for_function("window.podiumTest.state.meter !== null", timeout=30_000)
            await asyncio.sleep(2)  # the first bursts settle the jitter buffer
            await a.evaluate(DETECTOR, ["mic", 10])
            await b.evaluate(DETECTOR, ["live", 10])
            began = time.monotonic()
            while len(await a.evaluate("window.onsets")) < args.onsets + 1:
                if time.monotonic() - began > args.onsets * PERIOD_S * 2 + 30:
                    break
                await asyncio.sleep(1)
            await asyncio.sleep(1)  # B's last onset
            spoken = (await a.evaluate("window.onsets"))[1 : args.onsets + 1]
            heard = await b.evaluate("window.onsets")
            measured = latencies(spoken, heard)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                    exposition = await response.text()
            frames = frame_paths(exposition)
            age_p50, age_p99 = histogram_quantile(exposition, 0.5), histogram_quantile(exposition, 0.99)

            # CPU per listener stream: B alone, then with more listeners.
            window = args.cpu_seconds
            pid = gateway.process.pid
            before = cpu_seconds(pid)
            await asyncio.sleep(window)
            base_cpu = (cpu_seconds(pid) - before) / window
            async with aiohttp.ClientSession() as session:
                peers = [
                    await listener(session, url, space_id, f"bench-listener-{i}")
                    for i in range(args.listeners)
                ]
                async with asyncio.timeout(20):  # connected and flowing
                    while any(pc.connectionState != "connected" for pc in peers):
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1)
                connected = sum(pc.connectionState == "connected" for pc in peers)
                before = cpu_seconds(pid)
                await asyncio.sleep(window)
                loaded_cpu = (cpu_seconds(pid) - before) / window
                for pc in peers:
                    for task in pc.drains:
                        task.cancel()
                    await pc.close()
        finally:
            await speaker_browser.close()
            await listener_browser.close()
    per_listener = (loaded_cpu - base_cpu) / max(args.listeners, 1)
    return {
        **run_header(),
        "onsets_spoken": len(spoken),
        "onsets_heard": len(measured),
        "latency_ms": {
            "p50": round(percentile(measured, 0.5), 1) if measured else None,
            "p99": round(percentile(measured, 0.99), 1) if measured else None,
            "min": round(min(measured), 1) if measured else None,
            "max": round(max(measured), 1) if measured else None,
        },
        "frame_age_ms": {"p50": age_p50, "p99": age_p99},
        "frames": frames,
        "gateway_cpu": {
            "one_listener_one_speaker_pct": round(100 * base_cpu, 1),
            f"plus_{args.listeners}_listeners_pct": round(100 * loaded_cpu, 1),
            "per_listener_stream_pct": round(100 * per_listener, 2),
            "listeners_connected": connected,
        },
        "load_average": list(os.getloadavg()),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--onsets", type=int, default=100)
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main(parse_args(sys.argv[1:]))), indent=2))
