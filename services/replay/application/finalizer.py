"""Finalizing: turning a recorded Space's chunks into one Ogg Opus file and a ReplayFinalized.

A background worker polls the job table (and is woken when a job is
enqueued). For each runnable job it takes the job's advisory lock, then:

1. checks the replay stream: already finalized (a restart after the event was
   written) means only the job row is left to close;
2. waits for the recording spool to have stored the Space's chunks up to the
   recording partition's end, and reads them from it (progress 0-10 %);
3. decodes, mixes and encodes them in a worker thread (10-95 %), into
   scratch files;
4. puts the Ogg file and the frame index into the blob store (atomic);
5. appends ReplayFinalized (the stream's version check makes it happen once,
   whoever gets there first), and marks the job done.

A crash at any step leaves the job `running` without a lock; the next pass
starts it again from step 1, and the files it writes are the same. A job that
fails with an error (the broker unreachable, say) goes back to `pending` and
runs again after a backoff that doubles per attempt, up to 5 minutes. Progress is
written to the job row at most every `progress_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from libs.application.periodic import PeriodicSweep
from libs.config.settings import PodiumSettings
from services.replay.application.replay_commands import ReplayCommands
from services.replay.domain.replay import Expire, Finalize
from services.replay.infrastructure.audio import mix_to_ogg
from services.replay.infrastructure.blob_store import BlobStore
from services.replay.infrastructure.jobs import DONE, FAILED, JobStore
from services.replay.infrastructure.recording_spool import RecordingSpool
from services.replay.projections.replay_catalog import ReplayCatalog

log = logging.getLogger(__name__)


# Records are looked up by the broker's timestamps from the Space's start, less this margin for
# the relay's clock.
CLOCK_MARGIN = timedelta(minutes=5)


def ogg_key(space_id: str) -> str:
    return f"{space_id}.ogg"


def frames_key(space_id: str) -> str:
    return f"{space_id}.frames"


class Finalizer:
    def __init__(
        self,
        settings: PodiumSettings,
        jobs: JobStore,
        commands: ReplayCommands,
        catalog: ReplayCatalog,
        blobs: BlobStore,
        spool: RecordingSpool,
        *,
        delay: timedelta,
        poll_seconds: float = 1.0,
        progress_interval: float = 0.25,
        clock: Callable[[], datetime] | None = None,
    ):
        self.settings = settings
        self.jobs = jobs
        self.commands = commands
        self.catalog = catalog
        self.blobs = blobs
        self.spool = spool
        self.delay = delay
        self.poll_seconds = poll_seconds
        self.progress_interval = progress_interval
        self.clock = clock or commands.clock
        self.wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._conn: asyncpg.Connection | None = None

    async def enqueue(self, conn: asyncpg.Connection | None, space_id: str, ended_at: datetime) -> None:
        """Called by the catalog when a recorded Space ends, inside its transaction; idempotent."""
        await self.jobs.enqueue(space_id, ended_at, ended_at + self.delay, conn)
        self.wake.set()

    async def start(self) -> None:
        self.blobs.sweep_scratch(timedelta(hours=1))  # left by a worker killed midway
        self._task = asyncio.create_task(self._run(), name="replay-finalizer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("finalizer pass failed")
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                    self._conn = None
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)

    async def run_once(self) -> list[str]:
        """One pass over the runnable jobs; returns the Spaces it finalized."""
        if self._conn is None:
            self._conn = await asyncpg.connect(self.settings.database_url)
        finished = []
        for space_id in await self.jobs.runnable(self.clock()):
            async with self.jobs.claim(self._conn, space_id) as job:
                if job is None:
                    continue
                log.info("finalizing space %s (attempt %d)", space_id, job.attempts)
                try:
                    outcome = await self._finalize(space_id, job.ended_at)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    backoff = timedelta(seconds=min(300, 2**job.attempts))
                    log.exception("finalizing %s failed; retrying in %s", space_id, backoff)
                    await self.jobs.retry_later(
                        space_id, self.clock() + backoff, f"attempt {job.attempts}: {e!r}"
                    )
                    continue
                if outcome:
                    await self.jobs.finish(space_id, FAILED, outcome)
                else:
                    await self.jobs.finish(space_id, DONE)
                    finished.append(space_id)
        return finished

    async def _finalize(self, space_id: str, ended_at: datetime) -> str:
        """Finalizes one Space; returns '' when done, else why there is nothing to finalize."""
        if (await self.commands.state(space_id)).finalized:
            return ""
        loop = asyncio.get_running_loop()
        progress = {"value": 0.0}
        reporter = asyncio.create_task(self._report(space_id, progress))
        try:
            space = await self.catalog.get(space_id)
            started = space.started_at if space is not None else None
            await self.spool.caught_up()
            frames = await self.spool.frames(
                space_id,
                since=started - CLOCK_MARGIN if started else None,
                progress=lambda p: progress.__setitem__("value", 0.1 * p),
            )
            if not frames:
                return "the Space was recorded, but nobody spoke: there is no audio"
            ogg_tmp, index_tmp = (
                self.blobs.scratch(ogg_key(space_id)),
                self.blobs.scratch(frames_key(space_id)),
            )

            def on_mix(p: float) -> None:
                progress["value"] = 0.1 + 0.85 * p

            try:
                result = await loop.run_in_executor(
                    None, lambda: mix_to_ogg(frames, ogg_tmp, index_tmp, progress=on_mix)
                )
                self.blobs.put_file(frames_key(space_id), index_tmp)
                size = self.blobs.put_file(ogg_key(space_id), ogg_tmp)
            finally:
                ogg_tmp.unlink(missing_ok=True)
                index_tmp.unlink(missing_ok=True)
            await self.commands.as_system(
                space_id,
                Finalize(
                    space_id=space_id,
                    duration=result.duration,
                    size_bytes=size,
                    speaker_ids=result.speaker_ids,
                    recording_started_at=result.origin,
                    ended_at=ended_at,
                ),
                cause=f"finalize-{space_id}",
            )
            log.info("finalized %s: %s of audio, %d bytes", space_id, result.duration, size)
            return ""
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _report(self, space_id: str, progress: dict) -> None:
        last = -1.0
        while True:
            await asyncio.sleep(self.progress_interval)
            if progress["value"] != last:
                last = progress["value"]
                await self.jobs.progress(space_id, min(last, 0.99))


class RetentionSweeper(PeriodicSweep):
    """Deletes replays older than the retention: a ReplayDeleted(RETENTION_EXPIRED), then the files."""

    name = "replay-retention-sweep"

    def __init__(
        self,
        commands: ReplayCommands,
        catalog: ReplayCatalog,
        blobs: BlobStore,
        retention: timedelta,
        interval_seconds: float,
        clock: Callable[[], datetime] | None = None,
    ):
        super().__init__(interval_seconds)
        self.commands = commands
        self.catalog = catalog
        self.blobs = blobs
        self.retention = retention
        self.clock = clock or commands.clock

    async def sweep(self) -> list[str]:
        expired = []
        for replay in await self.catalog.expired(self.clock(), self.retention):
            events = await self.commands.as_system(
                replay.space_id,
                Expire(replay.space_id, replay.finalized_at + self.retention),
                cause=f"retention-{replay.space_id}",
            )
            delete_files(self.blobs, replay.space_id)
            if events:
                expired.append(replay.space_id)
                log.info("replay of %s expired and was deleted", replay.space_id)
        return expired


def delete_files(blobs: BlobStore, space_id: str) -> None:
    blobs.delete(ogg_key(space_id))
    blobs.delete(frames_key(space_id))
