"""A small TCP proxy for fault injection: added latency, and every connection cut on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time


class Proxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`.

    `delay` (seconds) holds back every chunk in both directions, keeping their order;
    `cut()` closes every open connection at once (clients see a reset and reconnect).
    """

    def __init__(self, target_port: int, port: int = 0):
        self.target_port = target_port
        self.port = port
        self.delay = 0.0
        self.accepted = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        self.cut()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def cut(self) -> int:
        """Closes every open connection; returns how many there were."""
        open_ = len(self._connections)
        for task in list(self._connections):
            task.cancel()
        self.cuts += open_
        return open_

    async def _serve(self, client_reader, client_writer) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        self.accepted += 1
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.transport.abort()  # a reset, not a polite close

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((time.monotonic() + self.delay, data))
            queue.put_nowait((0.0, b""))
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        raise OSError("closed")  # one side closed: end the whole connection
