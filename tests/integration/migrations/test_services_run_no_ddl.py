"""Services run no DDL: they refuse a schema not at their head, and run on a role that may not create.

The migrations (`podium migrate upgrade`, the migration Job) are the only DDL;
a service checks its schema's revision at start and exits, saying what to run,
when it is not the head its code needs. The runtime role has DML and TRUNCATE
(`podium migrate grant`) and no CREATE: a service serves, writes commands and
rebuilds a view on request with it.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from libs.devstack.supervisor import ServiceFailed
from libs.migrations.grants import runtime_grants
from libs.migrations.tool import downgrade_async, execute
from libs.projection.operations import request_rebuild
from podium.room.v1 import room_types_pb2
from tests.integration.clients import RoomClient
from tests.support.infrastructure import fresh_database
from tests.support.services import start_service

pytestmark = pytest.mark.integration


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


async def _exists(url: str, table: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    finally:
        await conn.close()


@pytest.mark.parametrize("service", ["room", "presence"])
async def test_a_service_on_a_schema_never_migrated_refuses_to_start_and_says_to_migrate(
    service, broker, database_server, run_dir
):
    async with fresh_database(database_server.url, migrated=False) as url:
        with pytest.raises(ServiceFailed) as refused:
            await start_service(
                service, bootstrap=broker.bootstrap, database_url=url, log_dir=run_dir,
                env=broker.service_env, migrate=False, timeout=60,
            )  # fmt: skip
        assert "exited with code" in str(refused.value)  # it stopped, it did not hang NOT_SERVING
        assert f"schema '{service}' was never migrated" in str(refused.value)
        assert "run `podium migrate upgrade`" in str(refused.value)
        assert not await _exists(url, f"{service}.view_positions")  # and it made nothing


async def test_a_service_on_a_schema_behind_its_head_refuses_to_start(broker, database_server, run_dir):
    async with fresh_database(database_server.url) as url:
        await downgrade_async(url, "webhooks")  # as if the migration Job of this release had not run
        with pytest.raises(ServiceFailed, match=r"schema 'webhooks' is at revision webhooks_0001, but this"):
            await start_service(
                "webhooks", bootstrap=broker.bootstrap, database_url=url, log_dir=run_dir,
                env=broker.service_env, migrate=False, timeout=60,
            )  # fmt: skip


async def test_services_serve_write_and_rebuild_a_view_with_a_role_that_may_not_create_tables(
    private_broker, database_server, service_factory
):
    role = f"podium_runtime_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(database_server.url)
    await server.execute(f"CREATE ROLE {role} LOGIN")
    try:
        async with fresh_database(database_server.url) as url:  # migrated, by the owner
            execute(url, runtime_grants(role))  # what `podium migrate grant` runs
            runtime_url = _as_role(url, role)
            runtime = await asyncpg.create_pool(runtime_url, min_size=1, max_size=2)
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await runtime.execute("CREATE TABLE room.not_allowed (id int)")

                room = await service_factory("room", broker=private_broker, database=runtime_url)
                alice = RoomClient(room.channel, "alice")
                created = await alice.CreateSpace(title="Runs on DML only", request_id="r-1")
                space_id = created.space.space_id
                await alice.StartSpace(space_id=space_id)
                assert await runtime.fetchval("SELECT count(*) FROM room.events") >= 2

                # A rebuild asked for and carried out as the runtime role: TRUNCATE, then the log again.
                assert await request_rebuild(runtime, "room", "room-space-directory") == [
                    ("room-space-directory", 2)
                ]
                await room.restart()
                assert not await runtime.fetchval("SELECT count(*) FROM room.view_rebuilds")
                got = await alice.GetSpace(space_id=space_id)
                assert got.space.state == room_types_pb2.SPACE_STATE_LIVE
            finally:
                await runtime.close()
    finally:
        await server.execute(f"DROP ROLE IF EXISTS {role}")
        await server.close()
