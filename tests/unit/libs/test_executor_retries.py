"""The executor's retry bound, with a store that always loses the race (a fake: this is retry logic only)."""

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from google.protobuf.wrappers_pb2 import Int64Value

from libs.application.executor import CommandExecutor
from libs.domain.decider import Context, Decider
from libs.domain.errors import Aborted
from libs.events.envelope import Causation
from libs.events.topics import TopicSpec
from libs.eventstore.store import ConcurrencyConflict
from podium.room.v1 import room_events_pb2


@dataclass
class AlwaysConflicting:
    appends: int = 0

    async def load(self, stream_id, after_version=0, conn=None):
        return []

    @contextlib.asynccontextmanager
    async def exclusive(self, stream_id):
        yield None  # a real store's lock would make the append win; this one never does

    async def append(self, **_kwargs):
        self.appends += 1
        raise ConcurrencyConflict("someone else always wins")

    async def stored_responses(self, keys):
        return {}


async def test_a_stream_that_keeps_changing_ends_in_aborted_after_the_bound():
    store = AlwaysConflicting()
    decider = Decider(
        lambda cmd, s, ctx: [room_events_pb2.SpaceCancelled(space_id="s")], lambda s, e, at: s + 1, 0
    )
    executor = CommandExecutor(store, decider, TopicSpec("t", "t"), max_attempts=3)
    with pytest.raises(Aborted) as error:
        await executor.execute(
            stream_id="s",
            space_id="s",
            command=object(),
            context=Context("u", datetime.now(UTC)),
            causation=Causation("u", "c", "c"),
            respond=lambda s, e: Int64Value(value=s),
            response_type=Int64Value,
        )
    assert error.value.reason == "CONCURRENCY_CONFLICT"
    assert store.appends == 3
