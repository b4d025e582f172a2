"""The `podium` command: the front door to the dev stack and its tools."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from cli.addresses import bootstrap_or_exit
from cli.log import log_app
from cli.migrate import migrate_app
from cli.views import views_app
from libs.extras import MissingExtra

app = typer.Typer(help="Podium: live social audio Spaces. Start here: `podium up`.", no_args_is_help=True)
app.add_typer(log_app, name="log")
events_app = typer.Typer(help="Read Podium's event stream (for analysts).", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(views_app, name="views")
app.add_typer(migrate_app, name="migrate")
console = Console()


def _secret() -> str:
    from libs.config.settings import PodiumSettings

    return PodiumSettings().jwt_secret.get_secret_value()


@app.command()
def up() -> None:
    """Start the broker, the database, every topic and every service; Ctrl-C stops them all.

    If the embedded broker dies, its log is recovered from PostgreSQL and the services restarted."""
    asyncio.run(_up())


def _status_table(stack, statuses: dict[str, str]) -> Table:
    table = Table(title="Podium", show_lines=False)
    table.add_column("component")
    table.add_column("address")
    table.add_column("status")
    table.add_row("broker", stack.bootstrap, "[green]up" if stack.bootstrap else "starting")
    table.add_row(
        "postgresql",
        stack.database.url if stack.database else "",
        stack.database.source if stack.database else "",
    )
    colours = {"SERVING": "green", "NOT_SERVING": "yellow", "DOWN": "red", "STARTING": "yellow"}
    for service in stack.services:
        status = statuses.get(service.spec.name, "STARTING")
        table.add_row(service.spec.name, service.address, f"[{colours.get(status, 'white')}]{status}")
    return table


async def _up() -> None:
    from libs.devstack.healing import broker_died, heal, recover_earlier_log
    from libs.devstack.stack import Stack
    from libs.devstack.supervisor import ServiceFailed

    stack = Stack()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        console.print("starting the broker and the database…")
        try:
            await stack.start_infrastructure()
            await recover_earlier_log(stack, lambda line: console.print(f"[yellow]{escape(line)}[/yellow]"))
        except (RuntimeError, TimeoutError) as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(1) from e
        statuses: dict[str, str] = {}
        services = stack.plan_services()
        try:
            for service in services:
                service.launch()
        except ServiceFailed as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(1) from e
        with Live(_status_table(stack, statuses), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                for service in services:
                    statuses[service.spec.name] = await service.health() if service.running else "EXITED"
                live.update(_status_table(stack, statuses))
                if all(s == "SERVING" for s in statuses.values()):
                    break
                if any(s == "EXITED" for s in statuses.values()):
                    failed = [s for s in services if not s.running]
                    for service in failed:
                        console.print(f"[red]{service.spec.name} exited[/red]:\n{service.output_tail()}")
                    raise typer.Exit(1)
                await asyncio.sleep(0.25)
        console.print()
        if not stop.is_set():
            stack.write_state()
            for service in services:
                console.print(f"{service.spec.name}: {service.address}")
            console.print(f"broker: {stack.bootstrap}")
            console.print(f"[bold]web client: {stack.web_client_url()}[/] (open it in a browser)")
            console.print(
                "[bold green]Podium is up.[/] Try `podium demo` in another terminal. Ctrl-C stops everything."
            )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if broker_died(stack) and not stop.is_set():
                try:
                    await heal(stack, lambda line: console.print(f"[yellow]{line}[/yellow]"))
                except (RuntimeError, TimeoutError) as e:
                    console.print(f"[red]could not heal the stack: {e}[/red]")
                    stop.set()
                continue
            for service in services:
                if not service.running:
                    console.print(
                        f"[red]{service.spec.name} exited unexpectedly[/red]:\n{service.output_tail()}"
                    )
                    stop.set()
    finally:
        console.print("stopping…")
        await stack.stop()
        console.print("stopped.")


@app.command()
def token(
    user_id: str = typer.Argument(
        ..., help="The user id, or with --gateway the gateway id (the token's `sub`)."
    ),
    role: list[str] = typer.Option([], "--role", help="Extra roles, e.g. trust-and-safety."),
    ttl: int = typer.Option(3600, help="Lifetime in seconds."),
    gateway: bool = typer.Option(False, "--gateway", help="A gateway token: USER_ID names the gateway."),
    kid: str = typer.Option(
        "", "--kid", help="Sign with this configured HS256 key; default: the current one (PODIUM_JWT_KEY_ID)."
    ),
) -> None:
    """Print a bearer token for USER_ID, signed with PODIUM_JWT_SECRET (or the key --kid names).

    The token's header names the key's kid, so it keeps verifying after a rotation
    while the key is among PODIUM_JWT_PREVIOUS_SECRETS.
    """
    from libs.auth.keys import HS256, KeyConfigurationError, KeySet
    from libs.auth.tokens import GATEWAY_ROLE, mint_token
    from libs.config.settings import PodiumSettings

    settings = PodiumSettings()
    try:
        keys = KeySet.load(
            settings.jwt_secret.get_secret_value(),
            current_kid=settings.jwt_key_id,
            previous=settings.jwt_previous_secrets.get_secret_value(),
        )
    except KeyConfigurationError as e:
        raise typer.BadParameter(str(e)) from e
    key = keys.for_kid(kid or settings.jwt_key_id)
    if key is None or key.algorithm != HS256:
        known = ", ".join(keys.kids)
        raise typer.BadParameter(f"no HS256 key has kid {kid!r}; configured: {known}", param_hint="--kid")
    roles = {*role, GATEWAY_ROLE} if gateway else set(role)
    typer.echo(
        mint_token(
            key.key, user_id, audience=settings.jwt_audience, ttl_seconds=ttl, roles=roles, key_id=key.kid
        )
    )


@app.command()
def demo(
    room: str = typer.Option("", help="Room service address; default: the one `podium up` started."),
    moderation: str = typer.Option("", help="Moderation service address; default: from `podium up`."),
    presence: str = typer.Option("", help="Presence service address; default: from `podium up`."),
) -> None:
    """Drive a realistic Space over gRPC and print its timeline, read back from the services."""
    import grpc

    from libs.config.settings import PodiumSettings
    from libs.devstack.demo import run_demo
    from libs.devstack.stack import read_state
    from libs.grpckit.channels import ClientTls

    if not room:
        try:
            services = read_state()["services"]
        except FileNotFoundError as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2) from e
        room = services["room"]
        moderation = moderation or services.get("moderation", "")
        presence = presence or services.get("presence", "")
    try:
        tls = ClientTls.from_settings(PodiumSettings())  # PODIUM_GRPC_TLS_CA_FILE etc., when set
        timeline = asyncio.run(run_demo(room, _secret(), moderation, presence, tls))
    except grpc.aio.AioRpcError as e:
        console.print(f"[red]{e.code().name}[/red]: {e.details()} (is the stack up at {room}?)")
        raise typer.Exit(1) from e
    console.print(f"[bold]Space {timeline.space_id}[/bold]")
    for i, step in enumerate(timeline.steps, 1):
        console.print(f"{i:2}. [cyan]{step.actor}[/cyan] {step.action}  → [bold]{step.state}[/bold]")
        console.print(f"      in the Space: {', '.join(step.participants) or 'nobody'}")
        if step.requests:
            console.print(f"      asking to speak: {', '.join(step.requests)}")
        if step.muted:
            console.print(f"      muted: {', '.join(step.muted)}")
        if step.listening is not None:
            console.print(f"      connected now (presence): {step.listening}")


@events_app.command("tail")
def events_tail(
    topic: list[str] = typer.Option(
        [],
        "--topic",
        help="Topic(s) to read; default: every Podium event topic (room, moderation, presence, media, replay).",
    ),
    space: str = typer.Option("", "--space", help="Only this Space's events."),
    event_type: str = typer.Option("", "--type", help="Only this event type (full or short name)."),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest event, not now."
    ),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Keep waiting for new events."),
    as_json_lines: bool = typer.Option(False, "--json", help="One JSON object per event."),
    bootstrap: str = typer.Option(
        "", help="Kafka bootstrap servers; default: KAFKA_BOOTSTRAP_SERVERS or `podium up`'s."
    ),
) -> None:
    """Print events as they are (or were) published, decoded; and a line for each record that is not
    (where it is and why), in its place in the stream."""
    from libs.config.settings import PodiumSettings
    from libs.events.tail import Filters, TailError, Undecodable, as_json, as_line, tail
    from libs.events.topics import EVENT_TOPICS

    bootstrap = bootstrap_or_exit(bootstrap)
    topics = topic or [t.name for t in EVENT_TOPICS]
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)

    def undecodable(record: Undecodable) -> None:
        typer.echo(record.as_json() if as_json_lines else record.as_line())

    async def run() -> None:
        async for envelope, payload in tail(
            settings,
            topics,
            Filters(space, event_type),
            from_beginning=from_beginning,
            follow=follow,
            undecodable=undecodable,
        ):
            typer.echo(as_json(envelope, payload) if as_json_lines else as_line(envelope, payload))

    try:
        asyncio.run(run())
    except TailError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        pass


def _time_or_exit(value: str, option: str, default):
    from datetime import UTC, datetime

    if not value:
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        console.print(
            f"[red]{option} {value!r} is not an ISO 8601 time[/red] (for example 2026-11-24T12:00:00Z)"
        )
        raise typer.Exit(2) from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@events_app.command("export")
def events_export(
    since: str = typer.Option("", "--since", help="ISO 8601 time; default: the beginning."),
    until: str = typer.Option("", "--until", help="ISO 8601 time (exclusive); default: now."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or parquet."),
    out: Path = typer.Option(..., "--out", help="The file to write."),
    topic: list[str] = typer.Option(
        [],
        "--topic",
        help="Topic(s); default: every Podium event topic (room, moderation, presence, media, replay).",
    ),
    bootstrap: str = typer.Option(
        "", help="Kafka bootstrap servers; default: KAFKA_BOOTSTRAP_SERVERS or `podium up`'s."
    ),
) -> None:
    """Export events from a time range, one row per event, each once (Parquet: the payload in typed
    columns). Streams: memory does not grow with the log."""
    from datetime import UTC, datetime

    from rich.progress import Progress, SpinnerColumn, TextColumn

    from libs.config.settings import PodiumSettings
    from libs.events.export import FORMATS, export
    from libs.events.tail import TailError
    from libs.events.topics import EVENT_TOPICS

    if fmt not in FORMATS:
        console.print(f"[red]--format {fmt!r}: use jsonl or parquet[/red]")
        raise typer.Exit(2)
    start = _time_or_exit(since, "--since", datetime(1970, 1, 1, tzinfo=UTC))
    end = _time_or_exit(until, "--until", datetime.now(UTC))
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap_or_exit(bootstrap))
    topics = topic or [t.name for t in EVENT_TOPICS]
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
    ) as progress:
        task = progress.add_task("writing events: 0", total=None)
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            if count % 500 == 0:
                progress.update(task, description=f"writing events: {count}")

        try:
            result = asyncio.run(export(settings, topics, start, end, out, fmt, tick))
        except TailError as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2) from e
    for record in result.first_undecodable:
        console.print(f"[yellow]skipped {record.as_line()}[/yellow]", highlight=False)
    console.print(
        f"wrote {result.written} events to {out} ({fmt}); dropped {result.duplicates} duplicates, "
        f"skipped {result.undecodable} undecodable records"
    )


@app.command()
def state(
    space: str = typer.Option(..., "--space", help="The Space's id."),
    at: str = typer.Option("", "--at", help="An ISO 8601 time, e.g. 2026-11-24T12:00:00Z; default: now."),
    bootstrap: str = typer.Option(
        "", help="Kafka bootstrap servers; default: KAFKA_BOOTSTRAP_SERVERS or `podium up`'s."
    ),
) -> None:
    """Show a Space as it was at a moment, rebuilt from its events in the log (as replay's GetSpaceStateAt)."""
    from datetime import UTC, datetime

    from libs.config.settings import PodiumSettings
    from libs.events.tail import TailError, space_history, space_log
    from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, ROOM_EVENTS
    from services.replay.domain.space_at import ROLE_NAMES, merge_by_time, state_at

    moment = _time_or_exit(at, "--at", datetime.now(UTC))
    bootstrap = bootstrap_or_exit(bootstrap)
    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap)

    async def rebuild():
        # With each event's stream and version: the version shown is the Space's own stream's.
        room = await space_log(settings, ROOM_EVENTS.name, space, until=moment)
        others = []
        for topic in (MODERATION_EVENTS.name, MEDIA_EVENTS.name):
            try:
                others.append(await space_history(settings, topic, space, until=moment))
            except TailError:
                others.append([])  # no such topic yet: that service has published nothing
        return state_at(merge_by_time(room, *others), moment)

    try:
        space_state = asyncio.run(rebuild())
    except TailError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(2) from e
    if not space_state.exists:
        console.print(f"[red]no events for Space {space} at or before {moment.isoformat()}[/red]")
        raise typer.Exit(1)
    roster = space_state.space.roster
    console.print(
        f"[bold]{space_state.title}[/bold] ({space}) at {moment.isoformat()}: "
        f"{space_state.status}, version {space_state.room_version}"
    )
    console.print(
        f"host {roster.host_user_id}; co-hosts: {', '.join(roster.co_hosts) or 'none'}; "
        f"speakers: {', '.join(roster.speakers) or 'none'}"
    )
    people = []
    for user_id in space_state.ordered_participants():
        member = space_state.member(user_id)
        flags = [
            name
            for name, on in (
                ("muted", member.muted),
                ("hand raised", member.hand_raised_at is not None),
                ("speaking", space_state.is_speaking(user_id)),
            )
            if on
        ]
        people.append(f"{user_id} ({', '.join([ROLE_NAMES.get(member.role, '?'), *flags])})")
    console.print(f"in the Space ({len(people)}): {', '.join(people) or 'nobody'}")


@app.command()
def report(
    space: str = typer.Option(..., "--space", help="The Space's id."),
    png: Path = typer.Option(
        None, "--png", help="Also write a plot: listeners over time, speaking-role and talking time."
    ),
    bootstrap: str = typer.Option(
        "", help="Kafka bootstrap servers; default: KAFKA_BOOTSTRAP_SERVERS or `podium up`'s."
    ),
) -> None:
    """Summarise a Space from its events: listeners, time in a speaking role and talking time, requests
    to speak, joins by source."""
    from libs.analytics.space_report import build, plot
    from libs.config.settings import PodiumSettings
    from libs.events.tail import TailError, space_history
    from libs.events.topics import MEDIA_EVENTS, ROOM_EVENTS

    settings = PodiumSettings(kafka_bootstrap_servers=bootstrap_or_exit(bootstrap))

    async def histories():
        room = await space_history(settings, ROOM_EVENTS.name, space)
        try:
            media = await space_history(settings, MEDIA_EVENTS.name, space)
        except TailError:
            media = []  # no media topic: nobody has talked anywhere yet
        return room, media

    try:
        events, media_events = asyncio.run(histories())
    except TailError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(2) from e
    if not events:
        console.print(f"[red]no events for Space {space}[/red]")
        raise typer.Exit(1)
    summary = build(space, events, media_events)
    table = Table(title=f"{summary.title} ({space})", show_header=False)
    duration = summary.duration
    wait = summary.median_wait_seconds

    def minutes(seconds: dict[str, float]) -> str:
        return ", ".join(f"{u}: {s / 60:.1f} min" for u, s in seconds.items()) or "-"

    for name, value in [
        ("host", summary.host_user_id),
        ("duration", f"{duration.total_seconds() / 60:.1f} min" if duration else "still live"),
        ("peak listeners", summary.peak_listeners),
        ("unique listeners", summary.unique_listeners),
        ("listener-minutes", f"{summary.listener_minutes:.1f}"),
        ("joins by source", ", ".join(f"{k}: {v}" for k, v in summary.joins_by_source.items())),
        ("requests to speak", f"{summary.speak_requests} ({summary.speak_requests_approved} approved)"),
        ("median wait to speak", f"{wait:.0f} s" if wait is not None else "-"),
        ("time in a speaking role", minutes(summary.speaking_role_seconds)),
        ("talking time", minutes(summary.talking_seconds)),
    ]:
        table.add_row(name, str(value))
    console.print(table)
    if png is not None:
        plot(summary, png)
        console.print(f"wrote {png}")


def main() -> None:
    """The `podium` command; a command that needs an extra that is not installed says which."""
    try:
        app()
    except MissingExtra as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
