"""The gateway's part of the contract: audio only for people the room lets in, for as long as it does.

A listener's stream starts after the room accepted their JoinSpace. It must
stop when they leave, are removed or time out, and when the Space ends: the
relay cannot tell, since one gateway subscription carries every listener's
audio (docs/security.md, "Who hears a Space"). The guard watches each Space
the gateway serves with presence's WatchSpace (a user's call, so it is opened
with one of that Space's listeners' own tokens) and closes the streams of
whoever leaves, and every stream of a Space that ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from podium.presence.v1 import presence_types_pb2 as presence_types
from podium.room.v1 import room_types_pb2 as room_types

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
_OVER = (presence_types.SPACE_CHANGE_KIND_ENDED, presence_types.SPACE_CHANGE_KIND_CANCELLED)


class MembershipGuard:
    def __init__(
        self,
        watch: Callable[[str, str], AsyncIterator],
        close: Callable[[str, str | None], None],
    ):
        """`watch(space_id, token)` yields WatchSpaceResponses; `close(space_id, user_id)` ends that
        user's streams there (user None: everyone's)."""
        self.watch = watch
        self.close = close
        self.tokens: dict[str, dict[str, str]] = {}  # Space -> user -> their token
        self.tasks: dict[str, asyncio.Task] = {}

    def add(self, space_id: str, user_id: str, token: str) -> None:
        self.tokens.setdefault(space_id, {})[user_id] = token
        task = self.tasks.get(space_id)
        if task is None or task.done():
            self.tasks[space_id] = asyncio.create_task(self._guard(space_id), name=f"guard-{space_id}")

    def remove(self, space_id: str, user_id: str) -> None:
        users = self.tokens.get(space_id, {})
        users.pop(user_id, None)
        if not users:
            self.tokens.pop(space_id, None)
            if (task := self.tasks.pop(space_id, None)) is not None:
                task.cancel()

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()

    async def _guard(self, space_id: str) -> None:
        while self.tokens.get(space_id):
            token = next(iter(self.tokens[space_id].values()))
            try:
                async for update in self.watch(space_id, token):
                    self._apply(space_id, update)
            except grpc.aio.AioRpcError as e:
                log.info("watching %s: %s %s", space_id, e.code().name, e.details())
            await asyncio.sleep(RETRY_SECONDS)

    def _apply(self, space_id: str, update) -> None:
        kind = update.WhichOneof("update")
        if kind == "change" and update.change.kind == presence_types.MEMBER_CHANGE_KIND_LEFT:
            user_id = update.change.member.user_id
            if user_id in self.tokens.get(space_id, {}):
                log.info("%s left %s: their streams end", user_id, space_id)
                self.close(space_id, user_id)
        elif kind == "space_change" and update.space_change.kind in _OVER:
            self.close(space_id, None)
        elif kind == "snapshot" and update.snapshot.space.state in _ENDED_STATES:
            self.close(space_id, None)
        # A snapshot's member list is not used to close anyone: presence's view may not have seen a
        # JoinSpace the room accepted a moment ago.


_ENDED_STATES = (room_types.SPACE_STATE_ENDED, room_types.SPACE_STATE_CANCELLED)
