"""`podium migrate`: the schemas' versioned migrations (Alembic), run with the owner's credentials.

    podium migrate upgrade                       # every history to its head (the migration Job)
    podium migrate upgrade --history room --to room_0002
    podium migrate upgrade --grant podium_runtime  # and the services' role may use the rows (the Job)
    podium migrate downgrade --history room      # one step back; --to REVISION for further
    podium migrate status [--json]               # each schema: its revision and the head
    podium migrate grant podium_runtime [--print]  # the services' role: rows only, no DDL
    podium migrate revision --history room -m "events keep a tenant"   # a developer's next revision

The database is --database-url, else PODIUM_MIGRATE_DATABASE_URL (the owner, who may change
tables), else DATABASE_URL, else the running `podium up`'s, else the settings' default (the local
PostgreSQL). Services never migrate: each refuses to start until its
schema is at its head (docs/operations.md, "Schema migrations").
"""

from __future__ import annotations

import dataclasses
import json

import typer
from rich.console import Console
from rich.table import Table

migrate_app = typer.Typer(
    help="Versioned schema migrations: upgrade, downgrade, status (the owner's credentials).",
    no_args_is_help=True,
)
console = Console()

HISTORY_HELP = "One history (a service's schema: room, presence, moderation, media_relay, replay, webhooks)."


DATABASE_URL = typer.Option(
    "",
    "--database-url",
    help="PostgreSQL, as its owner; default: PODIUM_MIGRATE_DATABASE_URL, DATABASE_URL, or `podium up`'s.",
)


def _url(database_url: str = "") -> str:
    from cli.addresses import running_stack
    from libs.config.settings import PodiumSettings

    settings = PodiumSettings()
    if owner := database_url or settings.migrate_database_url:
        return owner
    if "database_url" in settings.model_fields_set:  # DATABASE_URL is set
        return settings.database_url
    return running_stack("database") or settings.database_url


def _histories(history: str | None) -> tuple[str, ...]:
    from libs.migrations.histories import HISTORIES

    if history is None:
        return HISTORIES
    if history.replace("-", "_") not in HISTORIES:
        console.print(f"[red]no history {history!r}: one of {', '.join(HISTORIES)}")
        raise typer.Exit(2)
    return (history.replace("-", "_"),)


@migrate_app.command("upgrade")
def upgrade(
    history: str = typer.Option(None, "--history", help=HISTORY_HELP + " Default: every one."),
    to: str = typer.Option("head", "--to", help="The revision to reach (with --history); default: head."),
    grant: str = typer.Option(
        "",
        "--grant",
        envvar="PODIUM_MIGRATE_GRANT_ROLE",
        help="Then let this role (the services') read and write every schema's rows: `podium migrate grant`.",
    ),
    database_url: str = DATABASE_URL,
) -> None:
    """Brings each schema to its head (or --to a revision); a schema the previous release made is adopted."""
    from libs.migrations import tool
    from libs.migrations.grants import runtime_grants

    if to != "head" and history is None:
        console.print("[red]--to names a revision of one history: add --history")
        raise typer.Exit(2)
    url = _url(database_url)
    for name in _histories(history):
        before = tool.current(url, name)
        tool.upgrade(url, name, revision=to)
        after = tool.current(url, name)
        console.print(
            f"{name}: {before or 'never migrated'} -> {after}" if before != after else f"{name}: at {after}"
        )
    if grant:
        tool.execute(url, runtime_grants(grant, _histories(history)))
        console.print(f"{grant} may read and write the rows, and change no table")


@migrate_app.command("downgrade")
def downgrade(
    history: str = typer.Option(None, "--history", help=HISTORY_HELP + " Default: every one, one step each."),
    to: str = typer.Option(
        "-1", "--to", help="A revision of the history (with --history); default: one step back."
    ),
    database_url: str = DATABASE_URL,
) -> None:
    """Takes each schema one revision back (or --to a revision): before rolling back to the previous release."""
    from libs.migrations import tool

    if to != "-1" and history is None:
        console.print("[red]--to names a revision of one history: add --history")
        raise typer.Exit(2)
    url = _url(database_url)
    for name in _histories(history):
        before = tool.current(url, name)
        tool.downgrade(url, name, revision=to)
        console.print(f"{name}: {before} -> {tool.current(url, name) or 'base'}")


@migrate_app.command("status")
def status(
    history: str = typer.Option(None, "--history", help=HISTORY_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per schema."),
    database_url: str = DATABASE_URL,
) -> None:
    """Each schema's revision beside the head this release needs; exits 1 when one is not at its head."""
    from libs.migrations import tool

    standings = tool.status(_url(database_url), _histories(history))
    if as_json:
        for s in standings:
            typer.echo(json.dumps({**dataclasses.asdict(s), "at_head": s.at_head}))
    else:
        table = Table(title="Schema migrations")
        for column in ("history", "schema", "current", "head", "state"):
            table.add_column(column)
        for s in standings:
            state = "[green]at head" if s.at_head else "[red]not at head"
            table.add_row(s.history, s.schema, s.current or "never migrated", s.head, state)
        console.print(table)
    if not all(s.at_head for s in standings):
        raise typer.Exit(1)


@migrate_app.command("grant")
def grant(
    role: str = typer.Argument(..., help="The services' runtime role (it must exist)."),
    print_only: bool = typer.Option(False, "--print", help="Print the SQL instead of running it."),
    database_url: str = DATABASE_URL,
) -> None:
    """Lets the services' role read and write every schema's rows (TRUNCATE too), never change tables."""
    from libs.migrations.grants import runtime_grants
    from libs.migrations.tool import execute

    sql = runtime_grants(role)
    if print_only:
        typer.echo(sql.strip())
        return
    execute(_url(database_url), sql)
    console.print(f"{role} may read and write the rows of every schema, and change no table")


@migrate_app.command("revision")
def revision(
    history: str = typer.Option(..., "--history", help=HISTORY_HELP),
    message: str = typer.Option(..., "-m", "--message", help="What it changes, as a phrase."),
) -> None:
    """Writes the next revision of a history (for a developer), and makes it the head services expect."""
    from libs.migrations import tool

    (name,) = _histories(history)
    path = tool.new_revision(name, message)
    console.print(f"wrote {path}: fill in upgrade(schema) and downgrade(schema)")
