"""Session fixtures for integration tests: a real broker, a fresh database, service processes.

The broker is the embedded Tansu binary on a free port, unless
KAFKA_BOOTSTRAP_SERVERS points at one. The database is a fresh, uniquely named
database on the server `resolve_database` finds (DATABASE_URL, else
127.0.0.1:5432, else an embedded PostgreSQL), dropped at the end. Everything is
started lazily: unit tests start nothing. The helpers live in `tests/support/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from libs.devstack.broker import EmbeddedBroker
from libs.devstack.database import resolve_database
from tests.support.auth import token as mint_test_token
from tests.support.channels import open_channel
from tests.support.infrastructure import MIGRATED_TEMPLATES, fresh_database, running_broker
from tests.support.services import ServiceFactory

SERVICE_LOG_LINES = 60
LOUD_LEVELS = ("WARNING", "ERROR", "CRITICAL")

if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):  # the embedded broker; a real Kafka's default stands
    EmbeddedBroker.client_defaults()  # ADR 0016


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """Where brokers, databases and services of this run keep their logs."""
    return tmp_path_factory.mktemp("podium")


@pytest.fixture(scope="session")
async def broker(run_dir):
    """The session's broker: `.bootstrap`, and `.restart()` (empties it) when it is the embedded one."""
    async with running_broker(run_dir) as running:
        yield running


@pytest.fixture
async def private_broker(run_dir):
    """An embedded broker of the test's own, for tests that wipe it."""
    async with running_broker(run_dir, external_ok=False) as running:
        yield running


@pytest.fixture(scope="session")
async def database_server(run_dir):
    server = await resolve_database(run_dir / "pgdata")
    yield server
    await MIGRATED_TEMPLATES.drop()
    server.stop()


@pytest.fixture(scope="session")
async def database_url(database_server):
    """A fresh database for the session, every schema migrated to its head; dropped at the end."""
    async with fresh_database(database_server.url) as url:
        yield url


@pytest.fixture
async def private_database_url(database_server):
    """A database of the test's own (migrated), for tests that pair services with a private broker."""
    async with fresh_database(database_server.url) as url:
        yield url


@pytest.fixture(scope="session")
async def service_factory(broker, database_url, run_dir):
    """`await service_factory("room", broker=..., database=..., env=...)` -> a SERVING RunningService.

    A process on the session's broker and database lives until the session ends. One on a broker
    or database of a test's own is killed when that test ends (`stop_test_services`): left running,
    it would retry its vanished broker for the rest of the session, burning CPU.
    """
    factory = ServiceFactory(broker, database_url, run_dir)
    yield factory
    await factory.stop(factory.session_scoped)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the last lines of each service process it could see, so a
    failure on a CI machine, whose run directory is gone afterwards, can still be read."""
    outcome = yield
    report = outcome.get_result()
    factory = item.funcargs.get("service_factory") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or factory is None:
        return
    processes = [running.process for running in factory.test_scoped + factory.session_scoped]
    # First, each service's warnings and errors in a few lines: a long report is cut in its middle,
    # and the tails below may be all routine lines.
    report.sections.append(("service warnings", _warnings(processes)))
    for process in processes:
        name = process.log_path.name if process.log_path else process.spec.name
        report.sections.append((f"service log {name}", process.output_tail(SERVICE_LOG_LINES)))


def _warnings(processes, kinds: int = 8) -> str:
    """Per service: its WARNING-or-worse lines, alike ones (the same logger and message, numbers
    aside) counted as one kind; errors first, then the latest. A warning repeated a hundred times
    must not hide the one error."""
    out = []
    for process in processes:
        if not (process.log_path and process.log_path.exists()):
            continue
        kinds_seen: dict[tuple[str, str, str], list] = {}  # kind -> [count, last line, last index]
        for index, line in enumerate(process.log_path.read_text(errors="replace").splitlines()):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("level") not in LOUD_LEVELS:
                continue
            message = re.sub(r"\d+", "N", str(record.get("message", "")))[:200]
            kind = (record["level"], str(record.get("logger", "")), message)
            seen = kinds_seen.setdefault(kind, [0, "", 0])
            seen[0], seen[1], seen[2] = seen[0] + 1, line, index
        ranked = sorted(kinds_seen.items(), key=lambda k: (k[0][0] == "WARNING", -k[1][2]))
        out.append(f"{process.log_path.name}: {len(kinds_seen)} kind(s) of warning or worse")
        out += [f"  {count}x, last: {last[:400]}" for _, (count, last, _) in ranked[:kinds]]
    return "\n".join(out)


@pytest.fixture(autouse=True)
async def stop_test_services(request):
    """Kills, at the end of each test, the services it started on its own broker or database."""
    yield
    if "service_factory" in request.fixturenames:
        factory = request.getfixturevalue("service_factory")
        await factory.stop(factory.test_scoped)


@pytest.fixture(scope="session")
def token():
    """`token(user_id, roles=())` -> a valid bearer JWT for the services under test."""

    def make(user_id: str, roles: Iterable[str] = ()) -> str:
        return mint_test_token(user_id, roles)

    return make


@pytest.fixture
async def channel():
    """`await channel(address)` -> a connected async gRPC channel, closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_(address: str):
            return await stack.enter_async_context(open_channel(address))

        yield open_
