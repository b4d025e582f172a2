"""A service started in production mode with development settings refuses, before it connects to anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from libs.config.production import EX_CONFIG
from libs.config.settings import DEV_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]


def test_the_room_service_refuses_the_development_secret_in_production():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.pop("DATABASE_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(PODIUM_ENV="production", PODIUM_JWT_SECRET=DEV_JWT_SECRET, PODIUM_METRICS_PORT="0")
    # No broker and no database here: it must stop before it would need either.
    proc = subprocess.run(
        [sys.executable, "-m", "services.room"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines if line["level"] == "CRITICAL"]
    assert "production mode: PODIUM_JWT_SECRET is the development key; set a secret of your own" in messages
    assert all(line["service"] == "room" for line in lines)
    # One line per unsafe setting, each naming its variable, and nothing started before them.
    assert any(m.startswith("production mode: PODIUM_GRPC_TLS_CERT_FILE ") for m in messages)
    assert not any("metrics on" in line["message"] for line in lines)
    assert "ready" not in proc.stdout
