"""Where a durable view stands in the log, kept in the same transaction as its rows.

The tracking records of pyeventsourcing, for Kafka: per view and view version,

- `view_positions`: the next offset to read of each (topic, partition), so a
  restart resumes where the last commit left off instead of at offset 0;
- `view_streams`: the last version applied of each event stream (producer and
  stream id), so an event the log holds twice (a relay that published again
  after a crash) is applied once;
- `view_registry`: every view (and version) the schema has, as its runner last
  registered it at start;
- `view_writers`: each view's writer epoch, a fencing token: a replica that
  takes over as writer raises it, and a transaction of an older writer fails;
- `view_rebuilds`: rebuilds an operator asked for (`podium views rebuild`),
  carried out by the view's writer when it next starts.

The tables are made by the service's migrations (`podium migrate`), like the
views' own. Both are written by `record`, inside the transaction that writes the view's
rows: the view and its position can never disagree. Stream versions are read
on demand (`stream_versions`), so memory holds only the streams being applied
now, not every stream in history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg
from aiokafka import TopicPartition

Stream = tuple[str, str]  # (producer, stream id)

#: The writer's fence: its epoch is still the view's (FOR SHARE: a new writer's claim waits for
#: this transaction, and then reads the positions it stored).
FENCE = "SELECT 1 FROM {s}.view_writers WHERE view = $1 AND version = $2 AND epoch = $6 FOR SHARE"

#: The tables, made by every schema's migration history (libs/migrations); a runner checks they exist.
TABLES = ("view_positions", "view_streams", "view_rebuilds", "view_registry", "view_writers")


class Tracking:
    def __init__(self, schema: str, view: str, version: int):
        self.schema, self.view, self.version = schema, view, version

    async def positions(self, conn: asyncpg.Connection) -> dict[TopicPartition, int]:
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {self.schema}.view_positions "
            "WHERE view = $1 AND version = $2",
            self.view,
            self.version,
        )
        return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def stream_versions(self, conn: asyncpg.Connection, streams: Iterable[Stream]) -> dict[Stream, int]:
        streams = list(streams)
        if not streams:
            return {}
        # One primary-key lookup per stream: a plain join let the planner scan every stream the view
        # ever applied, for each batch (stale statistics say there are few), which grows with
        # history. OFFSET 0 keeps the LATERAL subquery from being flattened into such a join.
        rows = await conn.fetch(
            "SELECT q.producer, q.stream_id, s.applied_version "
            "FROM unnest($3::text[], $4::text[]) AS q(producer, stream_id) "
            f"CROSS JOIN LATERAL (SELECT applied_version FROM {self.schema}.view_streams "
            "WHERE view = $1 AND version = $2 AND producer = q.producer AND stream_id = q.stream_id OFFSET 0) s",
            self.view,
            self.version,
            [p for p, _ in streams],
            [s for _, s in streams],
        )
        return {(r["producer"], r["stream_id"]): r["applied_version"] for r in rows}

    async def record(
        self,
        conn: asyncpg.Connection,
        positions: Mapping[TopicPartition, int],
        streams: Mapping[Stream, int],
        *,
        epoch: int | None = None,
    ) -> bool:
        """Stores the positions and stream versions reached (call inside the view's transaction).

        With `epoch` (the writer's, from `claim`), the positions are stored only while it is still
        the view's (the fence, in the same statement); False when it is not, and the caller must
        then roll back."""
        if positions:
            fence = "" if epoch is None else f"WHERE EXISTS ({FENCE.format(s=self.schema)})"
            status = await conn.execute(
                f"INSERT INTO {self.schema}.view_positions (view, version, topic, partition, next_offset) "
                f"SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::bigint[]) {fence} "
                "ON CONFLICT (view, version, topic, partition) "
                "DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
                self.view,
                self.version,
                [tp.topic for tp in positions],
                [tp.partition for tp in positions],
                list(positions.values()),
                *(() if epoch is None else (epoch,)),
            )
            if int(status.rsplit(" ", 1)[-1]) != len(positions):
                return False
        if streams:
            await conn.execute(
                f"INSERT INTO {self.schema}.view_streams (view, version, producer, stream_id, applied_version) "
                "SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[]) "
                "ON CONFLICT (view, version, producer, stream_id) "
                "DO UPDATE SET applied_version = excluded.applied_version",
                self.view,
                self.version,
                [p for p, _ in streams],
                [s for _, s in streams],
                list(streams.values()),
            )
        return True

    async def claim(self, conn: asyncpg.Connection) -> int:
        """Makes the caller the view's writer: a new epoch, which fences off any older writer."""
        return await conn.fetchval(
            f"INSERT INTO {self.schema}.view_writers (view, version, epoch) VALUES ($1, $2, 1) "
            "ON CONFLICT (view, version) DO UPDATE SET epoch = view_writers.epoch + 1 RETURNING epoch",
            self.view,
            self.version,
        )

    async def register(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {self.schema}.view_registry (view, version) VALUES ($1, $2) "
            "ON CONFLICT (view, version) DO UPDATE SET started_at = now()",
            self.view,
            self.version,
        )

    async def rebuild_requested(self, conn: asyncpg.Connection) -> bool:
        return await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {self.schema}.view_rebuilds WHERE view = $1 AND version = $2)",
            self.view,
            self.version,
        )

    async def reset(self, conn: asyncpg.Connection) -> None:
        """Forgets where the view stood: the next start rebuilds it from the beginning of the log."""
        for table in ("view_positions", "view_streams", "view_rebuilds"):
            await conn.execute(
                f"DELETE FROM {self.schema}.{table} WHERE view = $1 AND version = $2", self.view, self.version
            )
