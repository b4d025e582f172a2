"""The dev stack heals a lost log from outside the services, as an operator would.

The embedded broker keeps its log in memory: when it dies, every topic and
record is gone, and the services report a lost log and stop consuming (they do
not heal themselves). `podium up`'s supervisor then does what the runbook says
(docs/operations.md, "Lost log"):

1. stops every service: each one's state depends on the log;
2. starts an empty broker on the same port;
3. runs the recovery (`libs.recovery.procedure.recover`, as `podium log
   recover`): topics, reseed from PostgreSQL, consumer groups and changelogs,
   a rebuild of every durable view;
4. starts the services again and waits until each reports SERVING;

saying what it does at each step.

The same holds at start: a new embedded broker is empty, while the database an earlier `podium
up` wrote to keeps its events and its views' positions. Before the services start, the supervisor
recovers that log too (`recover_earlier_log`); started on it unrecovered, they report the lost log
and never serve.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from libs.devstack.stack import Stack
from libs.eventstore.pool import create_pool
from libs.projection.operations import status
from libs.recovery.procedure import recover

#: SIGTERM's grace before SIGKILL: a service whose broker died has nothing left to drain to it.
STOP_GRACE_SECONDS = 5.0


def broker_died(stack: Stack) -> bool:
    """The stack's own embedded broker has exited (a broker of KAFKA_BOOTSTRAP_SERVERS is not ours)."""
    return stack.broker is not None and not stack.broker.running


async def recover_earlier_log(stack: Stack, say: Callable[[str], None]) -> bool:
    """Before the services start on the stack's new, empty broker: if a view has read anything (an
    earlier run's log, gone with its broker), recovers the log from PostgreSQL. Whether it did."""
    if stack.broker is None:
        return False
    settings = stack.settings()
    pool = await create_pool(settings)
    try:
        if not any(view.applied for view in await status(pool, settings)):
            return False
        say("the database holds an earlier run's log, which the new broker has not: recovering it")
        await recover(
            settings, pool, apps=stack.faust_apps(), say=lambda line: say(f"  {line}"), topics=stack.topics()
        )
        return True
    finally:
        await pool.close()


async def heal(stack: Stack, say: Callable[[str], None], serving_timeout: float = 180.0) -> float:
    """Brings the stack back after its embedded broker died; returns the seconds it took."""
    assert stack.broker is not None, "only the stack's own broker can be restarted"
    started = time.monotonic()
    say("the broker died and its log with it: stopping the services")
    # All at once: each waits out its own drain against a broker that is gone.
    await asyncio.gather(*(service.stop(grace=STOP_GRACE_SECONDS) for service in stack.services))
    await stack.broker.start()
    say(f"started an empty broker on {stack.bootstrap}; recovering the log from PostgreSQL")
    settings = stack.settings()
    pool = await create_pool(settings)
    try:
        await recover(
            settings, pool, apps=stack.faust_apps(), say=lambda line: say(f"  {line}"), topics=stack.topics()
        )
    finally:
        await pool.close()
    say("starting the services again")
    for service in stack.services:
        service.launch()
    for service in stack.services:
        await service.wait_serving(serving_timeout)
    seconds = time.monotonic() - started
    say(f"healed in {seconds:.1f} s: every service is SERVING on the recovered log")
    return seconds
