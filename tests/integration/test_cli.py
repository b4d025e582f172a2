"""The `podium` command's tools: a token that services accept, reading events, views (`podium log`:
test_log_recovery.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import jwt
import pytest

from libs.auth.keys import KeySet
from libs.auth.tokens import TokenVerifier
from libs.config.settings import DEV_JWT_SECRET
from podium.media.v1 import media_events_pb2 as mev
from services.presence.projections.space_board_rows import SpaceBoardRows
from tests.support import event_samples

pytestmark = pytest.mark.integration


def _podium(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_podium_token_prints_a_token_the_services_accept():
    result = _podium("token", "alice", "--role", "trust-and-safety", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    identity = TokenVerifier(DEV_JWT_SECRET, "podium").verify(result.stdout.strip())
    assert identity.user_id == "alice" and identity.roles == {"trust-and-safety"}


def test_podium_token_mints_gateway_tokens_with_the_key_its_kid_names():
    previous = "a-previous-secret-long-enough-for-hs256-signing"
    env = {**os.environ, "PODIUM_JWT_PREVIOUS_SECRETS": f"2026-11={previous}"}
    result = _podium("token", "gw-1", "--gateway", "--kid", "2026-11", env=env)
    assert result.returncode == 0, result.stderr
    assert jwt.get_unverified_header(result.stdout.strip())["kid"] == "2026-11"
    keys = KeySet.load(DEV_JWT_SECRET, current_kid="dev", previous=f"2026-11={previous}")
    identity = TokenVerifier(keys, "podium").verify(result.stdout.strip())
    assert identity.user_id == "gw-1" and identity.is_gateway
    unknown = _podium("token", "gw-1", "--kid", "2026-10", env=env)
    assert unknown.returncode != 0 and "2026-10" in unknown.stderr


async def test_podium_events_tail_prints_a_spaces_events_decoded(room, broker):
    import json as jsonlib
    import os

    from tests.integration.clients import RoomClient

    host = RoomClient(room.channel, "tail-host")
    space_id = (await host.CreateSpace(title="tailed")).space.space_id
    await host.StartSpace(space_id=space_id)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    args = ("events", "tail", "--from-beginning", "--no-follow", "--space", space_id)
    for _ in range(50):  # until the relay has published both events
        result = _podium(*args, "--json", env=env)
        assert result.returncode == 0, result.stderr
        lines = [jsonlib.loads(line) for line in result.stdout.splitlines()]
        if len(lines) >= 3:
            break
        await asyncio.sleep(0.2)
    assert [line["eventType"] for line in lines] == [
        "podium.room.v1.SpaceCreated",
        "podium.room.v1.SpaceStarted",
        "podium.room.v1.ParticipantJoined",
    ]
    assert lines[0]["payload"]["title"] == "tailed" and lines[0]["actorUserId"] == "tail-host"
    readable = _podium(*args, "--type", "SpaceStarted", env=env)
    assert readable.stdout.count("\n") == 1 and "SpaceStarted by tail-host" in readable.stdout


def test_podium_events_tail_explains_bad_input():
    unreachable = _podium("events", "tail", "--no-follow", "--bootstrap", "127.0.0.1:1")
    assert unreachable.returncode == 2 and "cannot reach the broker" in unreachable.stdout


async def test_podium_events_tail_names_an_unknown_topic(broker):
    result = _podium(
        "events", "tail", "--no-follow", "--topic", "podium.nope.v1", "--bootstrap", broker.bootstrap
    )
    assert result.returncode == 2 and "no topic podium.nope.v1" in result.stdout


async def test_podium_state_shows_a_space_as_it_was_at_a_moment(room, broker):
    import os

    from tests.integration.clients import RoomClient

    host, ann = RoomClient(room.channel, "state-host"), RoomClient(room.channel, "state-ann")
    space_id = (await host.CreateSpace(title="time travel")).space.space_id
    await host.StartSpace(space_id=space_id)
    await ann.JoinSpace(space_id=space_id)
    await asyncio.sleep(0.05)
    before_end = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.05)
    await host.EndSpace(space_id=space_id)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    for _ in range(50):  # until the relay has published the end
        now = _podium("state", "--space", space_id, env=env)
        if "ended" in now.stdout:
            break
        await asyncio.sleep(0.2)
    assert "ended" in now.stdout and "nobody" in now.stdout
    earlier = _podium("state", "--space", space_id, "--at", before_end, env=env)
    assert earlier.returncode == 0, earlier.stderr
    assert "live" in earlier.stdout and "state-ann (listener)" in earlier.stdout
    bad = _podium("state", "--space", space_id, "--at", "yesterday-ish", env=env)
    assert bad.returncode == 2 and "not an ISO 8601 time" in bad.stdout


async def test_podium_events_export_writes_parquet_with_typed_columns(room, broker, tmp_path):
    import os
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.integration.clients import RoomClient

    since = datetime.now(UTC) - timedelta(seconds=1)
    host = RoomClient(room.channel, "export-host")
    space_id = (await host.CreateSpace(title="exported", recording_enabled=True)).space.space_id
    await host.StartSpace(space_id=space_id)
    await RoomClient(room.channel, "export-ann").JoinSpace(space_id=space_id)
    await asyncio.sleep(1.0)  # published by the relay
    until = datetime.now(UTC)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    out = tmp_path / "events.parquet"
    result = _podium(
        "events", "export", "--since", since.isoformat(), "--until", until.isoformat(),
        "--format", "parquet", "--out", str(out), "--topic", "podium.room.events.v1", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    table = pq.read_table(out)
    mine = table.filter(pa.compute.equal(table["space_id"], space_id))
    assert mine.num_rows == 4  # created, started, host joined, ann joined
    assert table.schema.field("stream_version").type == pa.int64()
    assert table.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("payload_recording_enabled").type == pa.bool_()
    rows = mine.to_pylist()
    assert rows[0]["payload_title"] == "exported" and rows[0]["payload_recording_enabled"] is True
    assert rows[3]["payload_role"] == "ROLE_LISTENER" and rows[3]["payload_title"] is None
    assert all(since <= r["occurred_at"] < until for r in table.to_pylist())
    jsonl = tmp_path / "events.jsonl"
    again = _podium(
        "events", "export", "--until", until.isoformat(), "--out", str(jsonl),
        "--topic", "podium.room.events.v1", env=env,
    )  # fmt: skip
    assert again.returncode == 0 and space_id in jsonl.read_text()
    bad = _podium("events", "export", "--format", "csv", "--out", str(jsonl), env=env)
    assert bad.returncode == 2 and "use jsonl or parquet" in bad.stdout


async def test_podium_report_summarises_a_space_and_plots_it(room, broker, tmp_path):
    import os

    from tests.integration.clients import RoomClient

    host, ann, ben = (RoomClient(room.channel, u) for u in ("report-host", "report-ann", "report-ben"))
    space_id = (await host.CreateSpace(title="reported")).space.space_id
    await host.StartSpace(space_id=space_id)
    await ann.JoinSpace(space_id=space_id)
    await ben.JoinSpace(space_id=space_id)
    await ann.RequestToSpeak(space_id=space_id)
    await host.ApproveSpeakRequest(space_id=space_id, user_id="report-ann")
    await ben.LeaveSpace(space_id=space_id)
    await host.EndSpace(space_id=space_id)
    # What the media relay writes when ann stops talking (the relay itself is not needed here).
    talked = mev.SpeakerStoppedTalking(space_id=space_id, user_id="report-ann", talked_ms=30_000)
    await event_samples.write(
        broker.bootstrap, event_samples.as_records(event_samples.envelopes(space_id, [talked]))
    )
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "COLUMNS": "200"}
    png = tmp_path / "report.png"
    for _ in range(50):  # until the relay has published the end
        result = _podium("report", "--space", space_id, "--png", str(png), env=env)
        if "still live" not in result.stdout and result.returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert result.returncode == 0, result.stdout + result.stderr

    def row(name: str) -> str:
        return result.stdout.split(name)[1].splitlines()[0]

    # ann was promoted and ben left within milliseconds of joining: neither settled as a listener
    assert "│ 0" in row("peak listeners") and "│ 0" in row("unique listeners")
    assert "1 (1 approved)" in result.stdout
    assert "report-host:" in row("time in a speaking role") and "report-ann:" in row(
        "time in a speaking role"
    )
    assert "report-ann: 0.5 min" in row("talking time") and "report-host" not in row("talking time")
    assert png.read_bytes()[:4] == b"\x89PNG"


async def test_podium_views_status_lists_the_rooms_views_and_rebuild_asks_for_one(room, broker, database_url):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "DATABASE_URL": database_url}
    shown = _podium("views", "status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    views = {(v["schema"], v["view"]): v for v in map(json.loads, shown.stdout.splitlines())}
    from services.room.projections.moderation_reactions import ModerationReactions
    from services.room.projections.policy_evictor import PolicyEvictor
    from services.room.projections.presence_reactions import PresenceReactions
    from services.room.projections.space_directory import SpaceDirectory

    for view in (SpaceDirectory, ModerationReactions, PresenceReactions, PolicyEvictor):
        assert views[("room", view.name)]["version"] == view.version
        assert views[("room", view.name)]["lag"] == 0
    unknown = _podium("views", "rebuild", "room", "no-such-view", env=env)
    assert unknown.returncode == 1 and "no durable view" in unknown.stdout


async def test_podium_views_status_lists_presences_board_and_rebuild_asks_for_it(
    service_factory, private_broker, private_database_url
):
    # A broker and database of its own: a second presence on the session's broker would share its
    # faust group with the presence tests' own.
    presence = await service_factory("presence", broker=private_broker, database=private_database_url)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
        "DATABASE_URL": private_database_url,
    }
    shown = _podium("views", "status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    views = {(v["schema"], v["view"]): v for v in map(json.loads, shown.stdout.splitlines())}
    board = views[("presence", "presence-space-board")]
    assert board["version"] == SpaceBoardRows.version and board["lag"] == 0 and not board["rebuild_requested"]
    asked = _podium("views", "rebuild", "presence", "presence-space-board", env=env)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    shown = _podium("views", "status", "--json", env=env)
    views = {(v["schema"], v["view"]): v for v in map(json.loads, shown.stdout.splitlines())}
    assert views[("presence", "presence-space-board")]["rebuild_requested"]
    # Carried out at the next start: the board is rebuilt from the log, and SERVING once it is.
    await presence.restart()
    shown = _podium("views", "status", "--json", env=env)
    views = {(v["schema"], v["view"]): v for v in map(json.loads, shown.stdout.splitlines())}
    rebuilt = views[("presence", "presence-space-board")]
    assert not rebuilt["rebuild_requested"] and rebuilt["lag"] == 0
    assert "rebuilding from the log, as requested" in presence.process.log_path.read_text(errors="replace")
