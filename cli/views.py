"""`podium views`: where each durable view stands, and rebuilding one on purpose (docs/operations.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import typer
from rich.console import Console
from rich.table import Table

from cli.addresses import BOOTSTRAP, DATABASE_URL, bootstrap_or_exit, database_url_or_exit

views_app = typer.Typer(help="Inspect and rebuild the services' durable views.", no_args_is_help=True)
console = Console()


def _settings(database_url: str, bootstrap: str | None = None):
    """Where the views (and, for their lag, the log) are, found as every command beside a stack
    finds them: the option, else the environment, else the running `podium up`'s."""
    from libs.config.settings import PodiumSettings

    found = {"database_url": database_url_or_exit(database_url)}
    if bootstrap is not None:
        found["kafka_bootstrap_servers"] = bootstrap_or_exit(bootstrap)
    return PodiumSettings(**found)


async def _pool(settings):
    from libs.eventstore.pool import create_pool

    return await create_pool(settings)


@views_app.command("status")
def views_status(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per view, for scripts and alerts."),
    bootstrap: str = BOOTSTRAP,
    database_url: str = DATABASE_URL,
) -> None:
    """Each durable view: its version, records applied, and lag behind the log."""
    found = _settings(database_url, bootstrap)

    async def run():
        from libs.projection.operations import status

        pool = await _pool(found)
        try:
            return await status(pool, found)
        finally:
            await pool.close()

    rows = asyncio.run(run())
    if as_json:
        for r in rows:
            typer.echo(json.dumps(dataclasses.asdict(r)))
        return
    table = Table(title="Durable views")
    for column in ("schema", "view", "version", "applied", "lag", "partitions", "rebuild"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.schema, r.view, str(r.version), f"{r.applied:,}", f"{r.lag:,}", str(r.partitions),
            "requested" if r.rebuild_requested else "",
        )  # fmt: skip
    console.print(table if rows else "no durable views yet (no service has stored a position)")


@views_app.command("rebuild")
def views_rebuild(
    service: str = typer.Argument(..., help="The service whose views to rebuild: room, moderation, ..."),
    view: str = typer.Argument(None, help="One view (as `podium views status` names it); all if omitted."),
    database_url: str = DATABASE_URL,
) -> None:
    """Ask for a rebuild from the log; the view's writer carries it out when the service next starts."""
    found = _settings(database_url)

    async def run():
        from libs.projection.operations import request_rebuild

        pool = await _pool(found)
        try:
            return await request_rebuild(pool, service.replace("-", "_"), view)
        finally:
            await pool.close()

    requested = asyncio.run(run())
    if not requested:
        console.print(f"[red]no durable view {view or ''} found for {service}")
        raise typer.Exit(1)
    for name, version in requested:
        console.print(
            f"{service}: {name} v{version} will be rebuilt from the log when the service next starts"
        )
    console.print(f"Restart it (for example `kubectl rollout restart deployment/{service}`); it reports "
                  "NOT_SERVING until the views have caught up again.")  # fmt: skip
