"""Kafka over TLS with one user per service: listeners, users, ACLs and the services' settings agree.

Where a render has KafkaUsers (components/kafka-tls), every listener of the Kafka cluster is
TLS with authentication and the cluster authorizes (`simple`); each service has its KafkaUser,
whose ACLs are exactly what its code does (`catalogue.KafkaAccess`): no topic more, no
operation more; and each service logs in as that user, with the password from the user's
Secret, over SASL_SSL to a TLS listener, trusting the cluster CA it mounts.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from deploy.check.catalogue import SERVICES, DeployedService, KafkaAccess
from deploy.check.render import Render

OPERATIONS = ("Read", "Write", "Create", "Describe")  # the order users.yaml lists them in
Acl = tuple[str, str, str, str]  # (resource type, name, pattern type, operation)


def acl_entries(access: KafkaAccess) -> list[dict]:
    """A KafkaUser's spec.authorization.acls for `access`: one entry per resource."""
    ops: dict[tuple[str, str, str], set[str]] = {}
    for spec in access.writes:
        ops.setdefault(("topic", spec.name, "literal"), set()).update(("Write", "Create", "Describe"))
    for spec in access.reads:
        ops.setdefault(("topic", spec.name, "literal"), set()).update(("Read", "Describe"))
    if access.faust_app:
        # Its table changelogs and leader topic: read back, written, made when missing.
        ops[("topic", f"{access.faust_app}-", "prefix")] = {"Read", "Write", "Create", "Describe"}
        ops[("group", access.faust_app, "literal")] = {"Read"}
    return [
        {
            "resource": {"type": kind, "name": name, "patternType": pattern},
            "operations": [op for op in OPERATIONS if op in wanted],
        }
        for (kind, name, pattern), wanted in ops.items()
    ]


def _acls(entries: list[dict]) -> set[Acl]:
    found = set()
    for entry in entries:
        if entry.get("type", "allow") != "allow" or entry.get("host", "*") != "*":
            continue
        r = entry.get("resource", {})
        for op in entry.get("operations", []):
            found.add((r.get("type", ""), r.get("name", ""), r.get("patternType", "literal"), op))
    return found


def _container_env(render: Render, svc: DeployedService) -> tuple[dict, dict[str, str], dict]:
    """(the container, the values its ConfigMaps give, its env entries by name)."""
    workload = render.get(svc.kind, svc.name)
    if workload is None:
        return {}, {}, {}
    container = workload["spec"]["template"]["spec"]["containers"][0]
    config: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        cm = render.get("ConfigMap", ref.get("configMapRef", {}).get("name", ""))
        config.update((cm or {}).get("data", {}))
    return container, config, {e["name"]: e for e in container.get("env", [])}


def _mounted_from_secret(render: Render, svc: DeployedService, path: str, secret: str) -> bool:
    workload = render.get(svc.kind, svc.name)
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in pod["containers"][0].get("volumeMounts", []):
        if PurePosixPath(path).parent == PurePosixPath(mount["mountPath"]):
            return volumes.get(mount["name"], {}).get("secret", {}).get("secretName") == secret
    return False


def _check_cluster(render: Render) -> list[str]:
    problems = []
    for kafka in render.of_kind("Kafka"):
        where = f"{render.name}: Kafka/{kafka['metadata']['name']}"
        spec = kafka["spec"]["kafka"]
        for listener in spec.get("listeners", []):
            if not listener.get("tls") or "authentication" not in listener:
                problems.append(f"{where}: listener {listener['name']} must be TLS with authentication")
        if spec.get("authorization", {}).get("type") != "simple":
            problems.append(f"{where}: authorization must be simple, or the users' ACLs are not enforced")
        if "userOperator" not in kafka["spec"].get("entityOperator", {}):
            problems.append(f"{where}: entityOperator.userOperator is needed to create the KafkaUsers")
    return problems


def _check_service(render: Render, svc: DeployedService, ports: dict[int, dict]) -> list[str]:
    where = f"{render.name}: {svc.name}"
    problems = []
    user = render.get("KafkaUser", svc.kafka_user)
    if user is None:
        return [f"{where}: no KafkaUser {svc.kafka_user}"]
    spec = user["spec"]
    if spec.get("authentication", {}).get("type") != "scram-sha-512":
        problems.append(f"{where}: KafkaUser {svc.kafka_user} must authenticate with scram-sha-512")
    granted = _acls(spec.get("authorization", {}).get("acls", []))
    wanted = _acls(acl_entries(svc.kafka))
    problems += [f"{where}: KafkaUser {svc.kafka_user} lacks {acl}" for acl in sorted(wanted - granted)]
    problems += [
        f"{where}: KafkaUser {svc.kafka_user} grants {acl}, which its code does not need"
        for acl in sorted(granted - wanted)
    ]

    container, config, env = _container_env(render, svc)
    if not container:
        return problems
    values = {**config, **{k: e["value"] for k, e in env.items() if "value" in e}}
    if values.get("PODIUM_KAFKA_SECURITY_PROTOCOL") != "SASL_SSL":
        problems.append(f"{where}: PODIUM_KAFKA_SECURITY_PROTOCOL must be SASL_SSL")
    if values.get("PODIUM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512") != "SCRAM-SHA-512":
        problems.append(f"{where}: PODIUM_KAFKA_SASL_MECHANISM must be SCRAM-SHA-512, as the KafkaUser")
    if values.get("PODIUM_KAFKA_SASL_USERNAME") != svc.kafka_user:
        problems.append(f"{where}: PODIUM_KAFKA_SASL_USERNAME must be {svc.kafka_user}")
    ref = env.get("PODIUM_KAFKA_SASL_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if ref != {"name": svc.kafka_user, "key": "password"}:
        problems.append(
            f"{where}: PODIUM_KAFKA_SASL_PASSWORD must come from Secret {svc.kafka_user}, key password"
        )
    ca = values.get("PODIUM_KAFKA_SSL_CA_FILE", "")
    if not ca or not _mounted_from_secret(render, svc, ca, "podium-cluster-ca-cert"):
        problems.append(
            f"{where}: PODIUM_KAFKA_SSL_CA_FILE must be a file of the mounted Secret podium-cluster-ca-cert"
        )
    for server in values.get("KAFKA_BOOTSTRAP_SERVERS", "").split(","):
        port = int(server.rpartition(":")[2] or 0) if server.rpartition(":")[2].isdigit() else 0
        listener = ports.get(port)
        if listener is None or not listener.get("tls"):
            problems.append(f"{where}: KAFKA_BOOTSTRAP_SERVERS {server} is not a TLS listener of the cluster")
        elif listener.get("authentication", {}).get("type") != "scram-sha-512":
            problems.append(f"{where}: the listener on {port} must authenticate with scram-sha-512")
    return problems


def check_kafka_access(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        if not render.of_kind("KafkaUser"):
            continue
        problems += _check_cluster(render)
        ports = {
            listener["port"]: listener
            for kafka in render.of_kind("Kafka")
            for listener in kafka["spec"]["kafka"].get("listeners", [])
        }
        for svc in SERVICES:
            if svc.uses_kafka:
                problems += _check_service(render, svc, ports)
        known = {svc.kafka_user for svc in SERVICES if svc.uses_kafka}
        problems += [
            f"{render.name}: KafkaUser {u['metadata']['name']} belongs to no service"
            for u in render.of_kind("KafkaUser")
            if u["metadata"]["name"] not in known
        ]
    return problems
