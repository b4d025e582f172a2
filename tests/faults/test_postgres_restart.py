"""PostgreSQL stopped mid-load (`pg_ctl stop -m immediate`: a crash, recovered on start) and started again.

It runs on an embedded PostgreSQL of its own, never on the server other tests share.
While it is down a command fails with UNAVAILABLE (reason STORE_UNAVAILABLE) and
leaves nothing behind; once it is back the same call, with the same request_id,
succeeds once, and the log and the views converge.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
import pytest

from libs.devstack.database import create_database
from tests.faults.audio import RESUME_SECONDS, LiveAudio
from tests.faults.support import Load, assert_sound, converge, judge, record, stored_events
from tests.integration.clients import RoomClient, error_reason

pytestmark = [pytest.mark.faults, pytest.mark.integration]


class PrivatePostgres:
    """An embedded PostgreSQL of the test's own, started and stopped by `postgres_helper` in a
    process of its own (see there why), and crashed from here with a signal."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.url = self._helper("start")

    def _helper(self, action: str) -> str:
        for attempt in range(3):
            done = subprocess.run(
                [sys.executable, "-m", "tests.faults.postgres_helper", action, str(self.data_dir)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0:
                return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            if attempt == 2:
                raise RuntimeError(
                    f"postgres_helper {action} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
                )
            time.sleep(0.5)
        raise AssertionError("unreachable")

    async def crash(self) -> None:
        """SIGQUIT to the postmaster: what `pg_ctl stop -m immediate` sends (no checkpoint; recovery on start)."""
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        async with asyncio.timeout(15):
            while psutil.pid_exists(pid):
                await asyncio.sleep(0.05)

    async def start(self) -> None:
        await asyncio.to_thread(self._helper, "start")

    def stop(self) -> None:
        self._helper("stop")


@pytest.fixture
async def private_postgres():
    # Not under pytest's tmp_path: its parent is private to us, and the server runs as its own user.
    data_dir = Path(tempfile.mkdtemp(prefix="podium-faults-pg-"))
    server = await asyncio.to_thread(PrivatePostgres, data_dir / "pgdata")
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


async def test_postgres_down_is_unavailable_then_nothing_half_written(
    service_factory, private_broker, private_postgres
):
    database_url = await create_database(private_postgres.url, "podium_faults")
    room, relay = await asyncio.gather(
        service_factory(
            "room",
            broker=private_broker,
            database=database_url,
            env={
                "PODIUM_RATE_LIMIT_JOINS_PER_MINUTE": "0",
                "PODIUM_RATE_LIMIT_SPEAK_REQUESTS_PER_MINUTE": "0",
            },
        ),
        service_factory("media-relay", broker=private_broker, database=database_url),
    )
    load = Load(room.channel, prefix="d")
    space_id = await load.setup()
    probe = RoomClient(room.channel, "d-probe")
    audio = LiveAudio(relay.channel, space_id, load.host.user_id)
    await audio.start()
    load.start()
    try:
        await asyncio.sleep(2.0)
        await private_postgres.crash()
        stopped, stopped_at = time.monotonic(), time.time()
        errors_before = load.history.error_codes()
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await probe.JoinSpace(space_id=space_id, request_id="d-probe-join")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
        assert error_reason(refused.value) == "STORE_UNAVAILABLE"
        await asyncio.sleep(2.0)
        during = load.history.error_codes() - errors_before
        await private_postgres.start()
        outage = time.monotonic() - stopped
        audio_gap = audio.longest_gap(stopped_at, time.time())
        await asyncio.sleep(2.0)
        await probe.JoinSpace(space_id=space_id, request_id="d-probe-join")  # the same call, now accepted
        history = await load.finish()
        await audio.flowing()
        convergence = await converge(
            bootstrap=private_broker.bootstrap,
            database_url=database_url,
            space_id=space_id,
            room=room.channel,
        )
    finally:
        await load.close()
        await audio.close()
    events = {"room": await stored_events(database_url, "room", space_id)}
    verdict = judge(history, events)
    probe_events = [e for _, _, e in events["room"] if e.causation_id == "d-probe-join"]
    record(
        "postgres-crash-restart",
        verdict,
        convergence,
        history,
        postgres_down_seconds=round(outage, 2),
        errors_while_down=dict(during),
        errors=dict(history.error_codes()),
        audio=audio.summary(),
        audio_longest_gap_seconds=round(audio_gap, 3),
    )
    assert set(during) == {"UNAVAILABLE"}, during  # every call refused while down: UNAVAILABLE
    assert len(probe_events) == 1  # the refused attempt wrote nothing; its retry wrote its event once
    assert_sound(verdict, convergence)
    assert audio_gap < RESUME_SECONDS, f"audio stopped for {audio_gap:.2f} s while PostgreSQL was down"
