"""`python -m bench --quick --only append` runs and writes a well-formed result.

The smoke test of the benchmark command: a fresh database, a few hundred events
through each writer (podium's EventStore, raw asyncpg, the eventsourcing
library), in both shapes. It checks the shape of the JSON and that every rate
is positive, not the rates themselves (CI machines vary).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_append_benchmark_writes_results(tmp_path):
    before = (ROOT / "bench" / "RESULTS.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "append", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [json_file] = tmp_path.glob("*.json")
    [md_file] = tmp_path.glob("*.md")
    report = json.loads(json_file.read_text())

    assert {"date", "machine", "commit", "load_average_at_start", "benchmarks", "total_wall_seconds"} <= set(
        report
    )
    assert {"cpu", "cores", "memory_gib"} <= set(report["machine"])
    assert list(report["benchmarks"]) == ["append"]
    append = report["benchmarks"]["append"]
    assert append["error"] is None
    assert append["cpu_seconds"] and all(v >= 0 for v in append["cpu_seconds"].values())
    for shape in ("single", "batch"):
        result = append["raw"][shape]
        for writer in ("podium", "raw_asyncpg", "eventsourcing"):
            assert result[writer]["events"] == append["raw"]["events_per_shape"]
            assert result[writer]["events_per_s"] > 0
        assert result["rows"]["podium_events"] == result["rows"]["podium_outbox"]
        assert result["rows"]["eventsourcing_events"] == append["raw"]["events_per_shape"]
        assert result["ratio_vs_raw"] > 0 and result["ratio_vs_eventsourcing"] > 0
    targets = {t["name"]: t for t in append["targets"]}
    eventsourcing = [t for name, t in targets.items() if name.startswith("vs eventsourcing")]
    assert len(eventsourcing) == 2
    assert all(t["target"] == ">= 2x" and isinstance(t["met"], bool) for t in eventsourcing)
    assert "| Event append |" in md_file.read_text()
    # --quick leaves the recorded results alone.
    assert (ROOT / "bench" / "RESULTS.md").read_text() == before
