"""The dev stack itself: the embedded broker, database resolution, and `podium up` + `podium demo`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config.settings import DEV_JWT_SECRET
from libs.devstack.broker import EmbeddedBroker, free_port
from libs.devstack.catalogue import SERVICES
from libs.devstack.database import LOCAL_URL, answers, create_database, drop_database, resolve_database
from libs.devstack.demo import run_demo
from libs.events.topics import TopicSpec, create_topics
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc
from tests.integration.clients import RoomClient
from tests.support.infrastructure import fresh_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def _produce_and_count(bootstrap: str, topic: str) -> int:
    # Topics are made by their owner, never by a client writing to one: make it first.
    await create_topics(bootstrap, (TopicSpec(topic, "the dev stack's own check"),), 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_the_embedded_broker_serves_kafka_and_loses_everything_on_restart(tmp_path):
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    await broker.start()
    try:
        assert await _produce_and_count(broker.bootstrap, "devstack.check") == 1
        await broker.restart()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            assert "devstack.check" not in await consumer.topics()
        finally:
            await consumer.stop()
    finally:
        broker.stop()
    assert not broker.running


async def test_database_resolution_prefers_database_url_then_the_local_server(
    tmp_path, monkeypatch, database_url
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    resolved = await resolve_database(tmp_path / "pgdata")
    assert (resolved.url, resolved.source) == (database_url, "DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL")
    if not await answers(LOCAL_URL):
        pytest.skip("no local PostgreSQL on 127.0.0.1:5432")
    resolved = await resolve_database(tmp_path / "pgdata")
    assert resolved.source == "local"
    name = f"podium_dev_{uuid.uuid4().hex[:8]}"
    url = await create_database(resolved.url, name)
    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT current_database()") == name
    await conn.close()
    await drop_database(resolved.url, name)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> set[int]:
    """Direct children of `pid`, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_podium_up(tmp_path, database_url: str = "") -> tuple[subprocess.Popen, dict[str, int], int]:
    """`podium up` in `tmp_path`, every port picked free: the defaults (50051-50056) sit in Linux's
    ephemeral range, where an outbound connection of an earlier test can hold one. On
    `database_url` when given, else the database `podium up` finds."""
    ports = {spec.name: free_port() for spec in SERVICES}
    broker_port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "PODIUM_ANALYTICS_APP_ID")
        },
        **{spec.port_env: str(ports[spec.name]) for spec in SERVICES},
        "PODIUM_BROKER_PORT": str(broker_port),
        "PODIUM_GATEWAY_HTTP_PORT": str(free_port()),
        "COLUMNS": "200",
        # This checkout's code, not the installed one's: `podium up` runs in `tmp_path`.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        **({"DATABASE_URL": database_url} if database_url else {}),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "cli", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return up, ports, broker_port


async def _until_line(up: subprocess.Popen, output: list[str], marker: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            line = await asyncio.to_thread(up.stdout.readline)
            assert line, "podium up exited early:\n" + "".join(output)
            output.append(line)
            if marker in line:
                return


@dataclass
class PodiumUp:
    """A running `podium up` and what it has printed so far."""

    process: subprocess.Popen
    ports: dict[str, int]
    broker_port: int
    state_dir: Path
    database_url: str = ""
    output: list[str] = field(default_factory=list)

    async def until_line(self, marker: str, timeout: float) -> None:
        await _until_line(self.process, self.output, marker, timeout)

    async def ctrl_c(self) -> str:
        """SIGINT, as Ctrl-C in its terminal; returns the rest of its output once it has exited."""
        self.process.send_signal(signal.SIGINT)
        rest = await asyncio.to_thread(self.process.communicate, timeout=60)
        return rest[0]


@pytest.fixture(scope="module")
async def podium_up(tmp_path_factory, database_server):
    """One `podium up` the tests below share, in this order: the demo, then healing a dead broker,
    then Ctrl-C (each also passes alone: this starts the stack for it).

    On a database of its own: the `podium` database on a shared server holds every earlier run's
    Spaces, which a new (empty) broker would be made to carry first."""
    tmp_path = tmp_path_factory.mktemp("podium-up")
    async with fresh_database(database_server.url) as database_url:
        up, ports, broker_port = _start_podium_up(tmp_path, database_url)
        stack = PodiumUp(up, ports, broker_port, tmp_path / ".podium", database_url)
        try:
            await stack.until_line("Podium is up", 120)
            yield stack
        finally:
            if up.poll() is None:
                await stack.ctrl_c()


async def test_podium_up_runs_the_demo(podium_up):
    ports = podium_up.ports
    room_port, moderation_port, presence_port = ports["room"], ports["moderation"], ports["presence"]
    assert f"room: 127.0.0.1:{room_port}" in "".join(podium_up.output)
    assert "web client: http://127.0.0.1:" in "".join(podium_up.output)  # the gateway's page
    assert (podium_up.state_dir / "stack.json").exists()
    timeline = await run_demo(
        f"127.0.0.1:{room_port}",
        DEV_JWT_SECRET,
        f"127.0.0.1:{moderation_port}",
        f"127.0.0.1:{presence_port}",
    )
    steps = {step.action.split(" (")[0].split(":")[0]: step for step in timeline.steps}
    actions = [step.action for step in timeline.steps]
    assert actions[0].startswith("creates") and actions[-1] == "ends the Space"
    assert steps["mutes ana"].muted == ["ana"]
    assert "dan (listener)" not in steps["removes dan for spam"].participants
    assert any(a.startswith("tries to rejoin and is refused: PERMISSION_DENIED") for a in actions)
    assert timeline.steps[-2].participants == ["maya (host)", "ben (co-host)", "ana (speaker)"]
    assert timeline.steps[-2].listening == 3  # maya, ben and ana still connected
    assert max(step.listening or 0 for step in timeline.steps) == 5
    assert timeline.steps[-1].state == "ended"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{room_port}") as room_channel:
        host = RoomClient(room_channel, "devstack-media")
        space_id = (await host.CreateSpace(title="where is the audio")).space.space_id
        endpoint = await host.GetMediaEndpoint(space_id=space_id)
    assert endpoint.address == f"127.0.0.1:{ports['media-relay']}"  # the relay this stack runs
    # Beside it, with nothing in the environment, `podium views status` finds this stack's views
    # and `podium migrate status` its schemas (every one at its head: exit 0).
    shown = _beside(podium_up, "views", "status", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    views = {(v["schema"], v["view"]): v for v in map(json.loads, shown.stdout.splitlines())}
    assert views[("room", "room-space-directory")]["applied"] > 0, views
    migrations = _beside(podium_up, "migrate", "status", "--json")
    assert migrations.returncode == 0, migrations.stdout + migrations.stderr
    standings = [json.loads(line) for line in migrations.stdout.splitlines()]
    assert {s["history"] for s in standings} >= {"room", "presence", "moderation"}, standings
    assert all(s["at_head"] and s["current"] for s in standings), standings
    children = _children(podium_up.process.pid)
    assert len(children) >= 2, f"expected the broker and the room service under podium up: {children}"


def _beside(podium_up, *command: str) -> subprocess.CompletedProcess:
    """`podium <command>` beside the running stack, with nothing in the environment to say where
    its database and broker are."""
    unset = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "PODIUM_MIGRATE_DATABASE_URL")
    return subprocess.run(
        [sys.executable, "-m", "cli", *command],
        cwd=podium_up.state_dir.parent,
        env={
            **{k: v for k, v in os.environ.items() if k not in unset},
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _health(address: str, service: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.aio.AioRpcError as e:
            return e.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_podium_up_heals_itself_when_its_broker_dies(podium_up):
    ports, up = podium_up.ports, podium_up.process
    room_address = f"127.0.0.1:{ports['room']}"
    async with grpc.aio.insecure_channel(room_address) as channel:
        host = RoomClient(channel, "heal-host")
        before = (await host.CreateSpace(title="before the broker died")).space.space_id
        await host.StartSpace(space_id=before)
    broker = next(
        pid for pid in _children(up.pid) if b"--listener-url" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    said_before = len(podium_up.output)
    os.kill(broker, signal.SIGKILL)  # the embedded broker dies, and its in-memory log with it

    await podium_up.until_line("healed in", 300)
    said = "".join(podium_up.output[said_before:])
    assert said.index("the broker died") < said.index("reseed: room:") < said.index("healed in")
    assert {await _health(f"127.0.0.1:{ports[s.name]}", s.health_name) for s in SERVICES} == {"SERVING"}
    async with grpc.aio.insecure_channel(room_address) as channel:
        host = RoomClient(channel, "heal-host")
        listed = await host.ListSpaces(host_user_id="heal-host", page_size=10)
        assert [s.space_id for s in listed.spaces] == [before]  # from before the loss, still there
        after = (await host.CreateSpace(title="after the broker came back")).space.space_id
        await host.StartSpace(space_id=after)  # and commands work
        assert (await host.GetSpace(space_id=after)).space.started_at.seconds > 0


async def test_podium_up_stops_cleanly_on_ctrl_c(podium_up):
    up = podium_up.process
    children = _children(up.pid)  # the broker (a new one, after the heal above) and the services
    rest = await podium_up.ctrl_c()
    assert up.returncode == 0, "".join(podium_up.output) + rest
    assert "stopped." in rest
    assert not _listening(podium_up.ports["room"]) and not _listening(podium_up.broker_port)
    assert not [pid for pid in children if _alive(pid)], "podium up left processes behind"
    assert not (podium_up.state_dir / "stack.json").exists()


async def test_podium_up_started_again_recovers_the_log_its_last_broker_took_with_it(podium_up):
    """The stopped stack's broker kept its log in memory; its database kept the events and the
    views' positions. Started again on that database, `podium up` recovers the log before the
    services start (else they report a lost log and never serve), and the Spaces are still there."""
    host = "heal-host"  # the Spaces of the healing test above, when it ran
    if podium_up.process.poll() is None:
        host = "again-host"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{podium_up.ports['room']}") as channel:
            room = RoomClient(channel, host)
            await room.CreateSpace(title="before the stack stopped")
            for _ in range(100):  # until the directory (a view of the log) has read it
                if (await room.ListSpaces(host_user_id=host, page_size=10)).spaces:
                    break
                await asyncio.sleep(0.1)
        await podium_up.ctrl_c()
    up, ports, broker_port = _start_podium_up(podium_up.state_dir.parent, podium_up.database_url)
    again = PodiumUp(up, ports, broker_port, podium_up.state_dir, podium_up.database_url)
    try:
        await again.until_line("Podium is up", 180)
        said = "".join(again.output)
        assert "recovering it" in said and said.index("recovering it") < said.index("Podium is up"), said
        assert {await _health(f"127.0.0.1:{ports[s.name]}", s.health_name) for s in SERVICES} == {"SERVING"}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['room']}") as channel:
            listed = await RoomClient(channel, host).ListSpaces(host_user_id=host, page_size=10)
        assert listed.spaces, f"{host}'s Spaces did not come back"
    finally:
        if up.poll() is None:
            await again.ctrl_c()


async def test_a_service_process_stops_gracefully_and_restarts_on_its_port(service_factory, channel, token):
    room = await service_factory("room")
    health = health_pb2_grpc.HealthStub(await channel(room.address))
    reply = await health.Check(health_pb2.HealthCheckRequest(service="podium.room.v1.RoomService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = room_service_pb2_grpc.RoomServiceStub(room.channel)
    metadata = (("authorization", f"Bearer {token('devstack-host')}"),)
    created = await stub.CreateSpace(
        room_service_pb2.CreateSpaceRequest(title="lifecycle"), metadata=metadata
    )

    await room.terminate()  # SIGTERM: drains and exits on its own
    assert not room.running and room.process.process.returncode == 0
    assert not _listening(room.process.port)

    await room.restart()  # same port; the view is rebuilt from the log before SERVING
    got = await stub.GetSpace(
        room_service_pb2.GetSpaceRequest(space_id=created.space.space_id), metadata=metadata, timeout=10
    )
    assert got.space.title == "lifecycle"
    await room.stop()


async def test_without_any_server_an_embedded_postgresql_starts(tmp_path):
    from libs.devstack.database import ensure_database, start_embedded

    embedded = start_embedded(tmp_path / "pgdata")
    try:
        url = await ensure_database(embedded.url, "podium")
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_database()") == "podium"
            assert (await conn.fetchval("SHOW server_version")).split(".")[0].isdigit()
        finally:
            await conn.close()
    finally:
        embedded.stop()
