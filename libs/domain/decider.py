"""The Decider shape that every service's domain follows.

    decide(command, state) -> list[event]   (or raises a DomainError)
    evolve(state, event)   -> state
    initial_state

Events are protobuf messages (the published payloads); state is a frozen value.
`fold` is how both the write side and every projection rebuild state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from google.protobuf.message import Message

S = TypeVar("S")
C = TypeVar("C")


SYSTEM_CLAIM = "system"  # the claim a service's own commands carry (libs.application.issuer)


@dataclass(frozen=True)
class Context:
    """Facts about a command that are not in it: who sent it and when.

    `now` comes from the caller, so `decide` stays pure and testable.
    """

    actor_user_id: str
    now: datetime
    claims: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decider(Generic[C, S]):
    decide: Callable[[C, S, Context], list[Message]]
    evolve: Callable[[S, Message, datetime], S]
    initial_state: S


def fold(
    evolve: Callable[[S, Message, datetime], S], state: S, events: Iterable[tuple[Message, datetime]]
) -> S:
    """Applies `events` (each with the time it occurred) to `state` in order."""
    for event, occurred_at in events:
        state = evolve(state, event, occurred_at)
    return state
