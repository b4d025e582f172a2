"""Where the broker and the database are, for commands run beside a stack: an option, else the
environment (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL), else the running `podium up`'s."""

from __future__ import annotations

import os

import typer
from rich.console import Console

console = Console()

BOOTSTRAP = typer.Option(
    "", help="Kafka bootstrap servers; default: KAFKA_BOOTSTRAP_SERVERS or `podium up`'s."
)
DATABASE_URL = typer.Option("", help="PostgreSQL; default: DATABASE_URL or `podium up`'s.")


def _from_stack(key: str, hint: str) -> str:
    from libs.devstack.stack import read_state

    try:
        return read_state()[key]
    except FileNotFoundError as e:
        console.print(f"[red]{e}[/red] ({hint})")
        raise typer.Exit(2) from e


def running_stack(key: str) -> str:
    """The running `podium up`'s address of `key` ("database", "bootstrap"), or "" with none."""
    from libs.devstack.stack import read_state

    try:
        return read_state().get(key, "")
    except FileNotFoundError:
        return ""


def bootstrap_or_exit(bootstrap: str) -> str:
    return (
        bootstrap
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        or _from_stack("bootstrap", "or pass --bootstrap, or set KAFKA_BOOTSTRAP_SERVERS")
    )


def database_url_or_exit(database_url: str) -> str:
    return (
        database_url
        or os.environ.get("DATABASE_URL", "")
        or _from_stack("database", "or pass --database-url, or set DATABASE_URL")
    )
