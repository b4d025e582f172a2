"""`podium up`: the whole suite on one machine, on embedded defaults.

Broker: KAFKA_BOOTSTRAP_SERVERS, else an embedded one. Database: DATABASE_URL,
else 127.0.0.1:5432 if it answers, else an embedded PostgreSQL; every schema migrated to its
head (`podium migrate upgrade`), since services run no DDL. Then every topic (`EVERY_TOPIC`, and the
changelogs of an analytics app id set with PODIUM_ANALYTICS_APP_ID): the dev
stack owns its topics, services never make one. Then every service in the
catalogue, each on its default port (or its PODIUM_<NAME>_PORT). The addresses
go to `.podium/stack.json` so `podium demo` can find them.

When the embedded broker dies, `libs.devstack.healing` brings the stack back.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from libs.config.settings import PodiumSettings
from libs.devstack.broker import EmbeddedBroker
from libs.devstack.catalogue import SERVICES, metrics_port
from libs.devstack.database import ResolvedDatabase, ensure_database, resolve_database
from libs.devstack.supervisor import ServiceProcess
from libs.events.kafka_security import kafka_security
from libs.events.topics import EVERY_TOPIC, FaustTable, TopicSpec, changelogs, create_topics
from libs.migrations.tool import upgrade_all_async
from libs.recovery.readers import faust_apps

STATE_DIR = Path(".podium")
STATE_FILE = STATE_DIR / "stack.json"
DATABASE_NAME = "podium"


@dataclass
class Stack:
    state_dir: Path = STATE_DIR
    broker: EmbeddedBroker | None = None
    bootstrap: str = ""
    database: ResolvedDatabase | None = None
    services: list[ServiceProcess] = field(default_factory=list)

    async def start_infrastructure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        else:
            self.broker = EmbeddedBroker(
                port=int(os.environ.get("PODIUM_BROKER_PORT", "9092")), log_path=self.state_dir / "broker.log"
            )
            await self.broker.start()
            self.bootstrap = self.broker.bootstrap
        self.database = await resolve_database(self.state_dir / "pgdata")
        if self.database.source != "DATABASE_URL":
            # Our own database on a shared server, so Podium's schemas stay out of `postgres`.
            self.database.url = await ensure_database(self.database.url, DATABASE_NAME)
        # What the migration Job does before a rollout: services run no DDL.
        await upgrade_all_async(self.database.url)
        await self.make_topics()

    def settings(self) -> PodiumSettings:
        """The settings the stack's services run with, as far as the broker and database go."""
        return PodiumSettings(
            kafka_bootstrap_servers=self.bootstrap, database_url=self.database.url if self.database else ""
        )

    def faust_apps(self) -> dict[str, tuple[FaustTable, ...]]:
        """The faust apps the services run as: analytics' app id may be set in the environment."""
        configured = os.environ.get("PODIUM_ANALYTICS_APP_ID", "")
        return faust_apps((configured,) if configured else ())

    def topics(self) -> tuple[TopicSpec, ...]:
        extra = {spec for app, tables in self.faust_apps().items() for spec in changelogs(app, tables)}
        return (*EVERY_TOPIC, *sorted(extra - set(EVERY_TOPIC), key=lambda spec: spec.name))

    async def make_topics(self) -> list[str]:
        settings = self.settings()
        return await create_topics(
            self.bootstrap,
            self.topics(),
            settings.topic_partitions,
            settings.topic_replication_factor,
            **kafka_security(settings),
        )

    def plan_services(self) -> list[ServiceProcess]:
        assert self.database is not None
        env = {"DATABASE_URL": self.database.url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.broker is not None:
            env |= self.broker.service_env
        ports = {spec.name: int(os.environ.get(spec.port_env, spec.default_port)) for spec in SERVICES}
        if "PODIUM_ROOM_MEDIA_RELAYS" not in os.environ:
            # GetMediaEndpoint hands out the relay this stack really runs, wherever its port is.
            env |= {"PODIUM_ROOM_MEDIA_RELAYS": f"relay-0=127.0.0.1:{ports['media-relay']}"}
        # The gateway reaches the services this stack really runs, wherever their ports are.
        env |= {
            f"PODIUM_GATEWAY_{name.upper()}_ADDRESS": f"127.0.0.1:{ports[name]}"
            for name in ("room", "presence", "moderation", "replay")
            if f"PODIUM_GATEWAY_{name.upper()}_ADDRESS" not in os.environ
        }
        self.services = [
            ServiceProcess(
                spec,
                ports[spec.name],
                env | {"PODIUM_METRICS_PORT": str(metrics_port(spec))},
                log_path=self.state_dir / f"{spec.name}.log",
            )
            for spec in SERVICES
        ]
        return self.services

    def web_client_url(self) -> str:
        """Where the gateway serves the web client (PODIUM_GATEWAY_HTTP_PORT, 8080)."""
        return f"http://127.0.0.1:{int(os.environ.get('PODIUM_GATEWAY_HTTP_PORT', '8080'))}"

    def write_state(self) -> None:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "bootstrap": self.bootstrap,
            "database": self.database.url if self.database else "",
            "services": {s.spec.name: s.address for s in self.services},
            "web_client": self.web_client_url(),
        }
        (self.state_dir / "stack.json").write_text(json.dumps(state, indent=2))

    async def stop(self) -> None:
        # All at once: each drains to the broker on its own, so one after another only adds up
        # their drains.
        await asyncio.gather(*(service.stop() for service in self.services))
        if self.broker:
            self.broker.stop()
        if self.database:
            self.database.stop()
        (self.state_dir / "stack.json").unlink(missing_ok=True)


def read_state(state_dir: Path = STATE_DIR) -> dict:
    path = state_dir / "stack.json"
    if not path.exists():
        raise FileNotFoundError(f"no running stack found ({path} is missing): start one with `podium up`")
    return json.loads(path.read_text())
