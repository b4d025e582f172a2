"""Latency and connection resets between the services and the broker, through tests/faults/proxy.py.

Kafka clients connect to the listener the broker advertises in its metadata,
not to the bootstrap address they were given. So the broker listens on one port
and advertises the proxy's: every connection of every service (and of this
test) goes through the proxy, and a cut resets all of them.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from libs.config.settings import PodiumSettings
from libs.devstack.broker import EmbeddedBroker, broker_binary, free_port
from libs.events.kafka import make_reader
from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.proxy import Proxy
from tests.faults.support import Load, assert_sound, judge_stored, record, settle
from tests.support.infrastructure import make_topics

pytestmark = [pytest.mark.faults, pytest.mark.integration]


class ProxiedBroker(EmbeddedBroker):
    """Listens on its own port and advertises the proxy's: `.bootstrap` is the proxy."""

    def __init__(self, proxy: Proxy, **kwargs):
        super().__init__(**kwargs)
        self.listen_port = free_port()
        self.proxy = proxy

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def _accepts_connections(self) -> bool:
        import socket

        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.listen_port)) == 0

    def launch(self) -> None:
        output = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{self.listen_port}",
                    "--advertised-listener-url",
                    f"tcp://{self.proxy.address}",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if output is not subprocess.DEVNULL:
                output.close()


async def _metadata_round_trip(bootstrap: str) -> float:
    """Seconds for one metadata request through the proxy, on a connection already open."""
    reader = make_reader(PodiumSettings(kafka_bootstrap_servers=bootstrap), "faults-latency-probe")
    await reader.start()
    try:
        started = time.monotonic()
        await reader._client.fetch_all_metadata()
        return time.monotonic() - started
    finally:
        await reader.stop()


@pytest.fixture
async def proxied_broker(run_dir):
    proxy = Proxy(target_port=0, port=free_port())
    broker = ProxiedBroker(proxy, log_path=run_dir / f"broker-proxied-{uuid.uuid4().hex[:6]}.log")
    proxy.target_port = broker.listen_port
    await proxy.start()
    await broker.start()
    await make_topics(broker.bootstrap)  # the test stack owns the topics
    yield broker
    broker.kill()  # as running_broker does: a stop would wait for the test's services to hang up
    await proxy.stop()


async def test_latency_and_connection_resets_to_the_broker(
    service_factory, proxied_broker, private_database_url
):
    from tests.faults.conftest import NO_RATE_LIMITS, PRESENCE_ENV

    proxy = proxied_broker.proxy
    names = ("room", "moderation", "presence", "media-relay")
    started = await asyncio.gather(
        *(
            service_factory(
                name,
                broker=proxied_broker,
                database=private_database_url,
                env={**NO_RATE_LIMITS, **(PRESENCE_ENV if name == "presence" else {})},
            )
            for name in names
        )
    )
    services = dict(zip(names, started, strict=True))
    room, moderation, presence = services["room"], services["moderation"], services["presence"]
    load = Load(room.channel, moderation=moderation.channel, presence=presence.channel, prefix="n")
    space_id = await load.setup()
    audio = LiveAudio(services["media-relay"].channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    try:
        await asyncio.sleep(1.0)
        faults_began = time.time()
        proxy.delay = 0.25  # 250 ms each way on every broker connection
        round_trip = await _metadata_round_trip(proxied_broker.bootstrap)
        await asyncio.sleep(2.0)
        proxy.delay = 0.0
        open_at_cuts = []
        for _ in range(3):
            accepted = proxy.accepted
            open_at_cuts.append(proxy.cut())
            await asyncio.sleep(1.5)
            assert proxy.accepted > accepted, "nobody reconnected after the cut"
        audio_gap = audio.longest_gap(faults_began, time.time())
        history = await load.finish()
        await audio.flowing()
        convergence = await settle(load, proxied_broker.bootstrap, private_database_url)
    finally:
        await load.close()
        await audio.close()
    verdict = await judge_stored(history, private_database_url, space_id)
    record(
        "broker-latency-250ms-and-3-resets",
        verdict,
        convergence,
        history,
        connections_cut=open_at_cuts,
        delayed_metadata_round_trip_seconds=round(round_trip, 2),
        heartbeats_failed=history.heartbeats_failed,
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_longest_gap_seconds=round(audio_gap, 3),
    )
    assert round_trip >= 0.5  # the latency was really in the path: 250 ms each way
    assert all(n > 0 for n in open_at_cuts)  # the services' traffic really went through the proxy
    assert_sound(verdict, convergence)
    # Live audio does not go through the broker: its latency and resets never silence it.
    assert audio_gap < RESUME_SECONDS, f"audio stopped for {audio_gap:.2f} s during the broker faults"
