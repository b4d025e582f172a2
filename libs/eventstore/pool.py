"""The connection pool every service's event store uses.

Pool connections never carry session state: no LISTEN, no advisory locks, no
session settings (the relay keeps those on a connection of its own). So a
connection going back to the pool needs no reset query, which saves a round
trip on every command.
"""

from __future__ import annotations

import asyncpg

from libs.config.settings import PodiumSettings


async def _no_session_state_to_reset(connection: asyncpg.Connection) -> None:
    return None


async def create_pool(settings: PodiumSettings, *, min_size: int = 2) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=min(min_size, settings.database_pool_size),
        max_size=settings.database_pool_size,
        reset=_no_session_state_to_reset,
        command_timeout=30,
    )
