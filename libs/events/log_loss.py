"""A lost log, noticed: reported, and never papered over.

Kafka keeps its log, replicated. When a consumer nonetheless finds that the log it
reads is not the one it read before, the history it has not applied is gone from
the log, and reading on would skip it without a trace. The signs:

- a stored or committed position beyond the end of the partition's log;
- a topic gone, or made again with another partition count;
- a hole in a stream's versions that does not fill.

On any of them the consumer stops reading that partition and reports it here:
one log line per partition, the metric `podium_log_lost` set to 1 for it, and
every listener told (the service's health turns NOT_SERVING). Nothing in the
service repairs it: recovering is an operator's procedure (docs/operations.md,
`podium log recover`), after which the service is restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from libs.telemetry.metrics import LOG_LOST

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loss:
    consumer: str
    topic: str
    partition: int  # -1: the whole topic
    reason: str


class LogLoss:
    """The partitions a process stopped reading because their log was lost. One per process,
    shared by its consumers, so its health can say whether any of them lost its log."""

    def __init__(self) -> None:
        self.losses: dict[tuple[str, str, int], Loss] = {}
        self._listeners: list[Callable[[Loss], None]] = []

    @property
    def lost(self) -> bool:
        return bool(self.losses)

    def on_loss(self, listener: Callable[[Loss], None]) -> None:
        self._listeners.append(listener)
        for loss in self.losses.values():
            listener(loss)

    def report(self, consumer: str, topic: str, partition: int, reason: str) -> bool:
        """Records the loss; True the first time this consumer reports this partition."""
        key = (consumer, topic, partition)
        if key in self.losses:
            return False
        loss = self.losses[key] = Loss(consumer, topic, partition, reason)
        LOG_LOST.labels(consumer, topic, str(partition)).set(1)
        log.error(
            "LOG LOST: %s stopped reading %s[%s]: %s. The service is NOT_SERVING until an operator"
            " recovers the log (docs/operations.md, `podium log recover`) and restarts it",
            consumer,
            topic,
            "all" if partition < 0 else partition,
            reason,
        )
        for listener in self._listeners:
            listener(loss)
        return True
