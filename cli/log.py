"""`podium log`: recovering a lost log, step by step or all at once (docs/operations.md, "Lost log").

Run with the services stopped (scaled to 0); start them afterwards. The
mechanism is `libs.recovery`; these commands only find the broker and the
database and print what was done.
"""

from __future__ import annotations

import asyncio
import os

import typer
from rich.console import Console

from cli.addresses import BOOTSTRAP, DATABASE_URL, bootstrap_or_exit, database_url_or_exit

log_app = typer.Typer(
    help="Recover the event log after a broker lost it (services stopped first).", no_args_is_help=True
)
console = Console()

ANALYTICS_APP_IDS = typer.Option(
    [],
    "--analytics-app-id",
    help="Another analytics app id to reset besides podium-analytics (PODIUM_ANALYTICS_APP_ID, when set, counts).",
)


def _settings(bootstrap: str = "", database_url: str = ""):
    from libs.config.settings import PodiumSettings

    options = {}
    if bootstrap is not None:
        options["kafka_bootstrap_servers"] = bootstrap_or_exit(bootstrap)
    if database_url is not None:
        options["database_url"] = database_url_or_exit(database_url)
    return PodiumSettings(**options)


def _apps(extra: list[str]):
    from libs.recovery.readers import FAUST_APPS, faust_apps

    configured = os.environ.get("PODIUM_ANALYTICS_APP_ID", "")
    ids = [*extra, *([configured] if configured else [])]
    return faust_apps(tuple(i for i in dict.fromkeys(ids) if i not in FAUST_APPS))


async def _with_pool(settings, work):
    from libs.eventstore.pool import create_pool

    pool = await create_pool(settings)
    try:
        return await work(pool)
    finally:
        await pool.close()


@log_app.command("topics")
def log_topics(bootstrap: str = BOOTSTRAP) -> None:
    """Create every missing topic, and make again any with the wrong partition count."""
    from libs.recovery.topics import make_topics

    made = asyncio.run(make_topics(_settings(bootstrap, None)))
    console.print(f"made {len(made)} topics: {', '.join(made)}" if made else "every topic is in place")


@log_app.command("reseed")
def log_reseed(
    service: list[str] = typer.Argument(
        None,
        help="Services whose events to publish again (room, moderation, media-relay, replay); default: all.",
    ),
    bootstrap: str = BOOTSTRAP,
    database_url: str = DATABASE_URL,
) -> None:
    """Publish every event stored in PostgreSQL to its topic again, in order, waiting for each ack."""
    from libs.recovery.reseed import event_stores, reseed, schema_of

    settings = _settings(bootstrap, database_url)

    async def run(pool):
        stores = await event_stores(pool)
        wanted = [schema_of(s) for s in service] if service else stores
        unknown = [s for s in wanted if s not in stores]
        if unknown:
            console.print(
                f"[red]no event store in schema {', '.join(unknown)}[/red] (found: {', '.join(stores)})"
            )
            raise typer.Exit(1)
        return {schema: await reseed(pool, settings, schema) for schema in wanted}

    for schema, counts in asyncio.run(_with_pool(settings, run)).items():
        for topic, count in sorted(counts.items()):
            console.print(f"{schema}: {count} events published to {topic}")
        if not counts:
            console.print(f"{schema}: no events stored")


@log_app.command("reset-groups")
def log_reset_groups(
    bootstrap: str = BOOTSTRAP,
    database_url: str = DATABASE_URL,
    analytics_app_id: list[str] = ANALYTICS_APP_IDS,
) -> None:
    """Send every faust app's consumer group back to the earliest offsets, empty its changelogs, and
    forget the positions stored in PostgreSQL outside the durable views (the recording spool's)."""
    from libs.recovery.readers import reset_readers

    settings = _settings(bootstrap, database_url)
    done = asyncio.run(
        _with_pool(settings, lambda pool: reset_readers(settings, pool, _apps(analytics_app_id)))
    )
    for line in done.lines():
        console.print(line)


@log_app.command("recover")
def log_recover(
    bootstrap: str = BOOTSTRAP,
    database_url: str = DATABASE_URL,
    analytics_app_id: list[str] = ANALYTICS_APP_IDS,
) -> None:
    """All of it, in order: topics, reseed, reset-groups, then a rebuild of every durable view.

    Stop the services first (scale them to 0), and start them afterwards: they report SERVING once
    their views have caught up with the new log."""
    from libs.recovery.procedure import recover

    settings = _settings(bootstrap, database_url)
    asyncio.run(
        _with_pool(
            settings, lambda pool: recover(settings, pool, apps=_apps(analytics_app_id), say=console.print)
        )
    )
    console.print("[bold green]recovered.[/] Start the services now.")
