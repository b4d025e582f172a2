"""docs/analysts.md's recipe, run as written: a topic into DuckDB from docs/podium.binpb alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from libs.events.topics import ROOM_EVENTS
from tests.support import event_samples

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# Appended to the recipe: what it read, and proof that no Podium package was imported.
REPORT = """
import json as _json, sys as _sys
_ours = sorted(m for m in _sys.modules if m.split(".")[0] in ("podium", "libs", "services", "cli", "gen"))
_mine = con.sql("SELECT event_type, payload FROM events WHERE space_id = ? ORDER BY stream_version", params=[SPACE]).fetchall()
print(_json.dumps({"imported": _ours, "rows": _mine, "titles": titles.fetchall()}))
"""


def recipe(name: str) -> str:
    text = (ROOT / "docs" / "analysts.md").read_text()
    match = re.search(rf"<!-- recipe: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"docs/analysts.md has no recipe {name!r}"
    return match.group(1)


async def test_the_duckdb_recipe_reads_the_room_topic_from_the_descriptor_set_alone(private_broker, tmp_path):
    space_id = f"recipe-{uuid.uuid4().hex[:8]}"
    room_events = [
        p for p in event_samples.samples(space_id) if p.DESCRIPTOR.file.package == "podium.room.v1"
    ]
    envelopes = event_samples.envelopes(space_id, room_events)
    records = event_samples.as_records(envelopes)
    garbage = (ROOM_EVENTS.name, space_id, b"\xff not an envelope")
    await event_samples.write(
        private_broker.bootstrap, [*records, garbage, records[0]]
    )  # the first one twice

    script = tmp_path / "recipe.py"
    script.write_text(f"SPACE = {space_id!r}\n" + recipe("duckdb") + REPORT)
    # A process that cannot import Podium: no PYTHONPATH, run from elsewhere, and the check above.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
        "PODIUM_DESCRIPTORS": str(ROOT / "docs" / "podium.binpb"),
        "PODIUM_TOPIC": ROOM_EVENTS.name,
    }
    result = subprocess.run(
        [sys.executable, "-I", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    assert f"skipped {ROOM_EVENTS.name}:" in result.stdout
    assert [event_type for event_type, _ in report["rows"]] == [e.event_type for e in envelopes]  # once each
    payloads = {event_type: json.loads(payload) for event_type, payload in report["rows"]}  # the full ones
    created = payloads["podium.room.v1.SpaceCreated"]
    assert created["title"] == "sample-title" and created["scheduledStart"] == "2026-11-24T12:00:00Z"
    assert [space_id, "sample-title"] in report["titles"]
