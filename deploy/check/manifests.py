"""What the rendered manifests must say, beyond their schemas: Podium's own rules.

Each function takes the renders and returns problems. The rules: every service is
deployed hardened with gRPC probes on its health service (exec probes that speak TLS
when it serves TLS) and a grace period that
covers its drain; topics match libs/events/topics.py; the relay ring names the relay
StatefulSet's pods; production commits no Secret; NetworkPolicies open public ports
to gateways only.
"""

from __future__ import annotations

from deploy.check.catalogue import SERVICES, DeployedService, expected_topics
from deploy.check.render import Render
from libs.devstack import catalogue as devstack

PRESTOP_MARGIN_SECONDS = 5  # flushing the outbox and committing offsets after the drain
CREDENTIALS = ("DATABASE_URL", "PODIUM_JWT_SECRET", "PODIUM_KAFKA_SASL_PASSWORD")
TLS_PROBE = ["python", "-m", "libs.grpckit.probe"]


def _config(render: Render, *names: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name in names:
        cm = render.get("ConfigMap", name)
        if cm:
            merged.update(cm.get("data", {}))
    return merged


def _prestop_seconds(container: dict) -> int:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return int(command[1]) if len(command) == 2 and command[0] == "sleep" and command[1].isdigit() else 0


def _check_workload(render: Render, svc: DeployedService) -> list[str]:
    where = f"{render.name}: {svc.kind}/{svc.name}"
    workload = render.get(svc.kind, svc.name)
    if workload is None:
        return [f"{where}: missing"]
    problems = []
    for kind in ("Service", "ServiceAccount", "ConfigMap", "PodDisruptionBudget"):
        if render.get(kind, svc.name) is None:
            problems.append(f"{where}: no {kind} named {svc.name}")
    service = render.get("Service", svc.name)
    if service and not any(
        p.get("name") == "grpc" and p.get("port") == svc.port for p in service["spec"].get("ports", [])
    ):
        problems.append(f"{where}: Service has no port named grpc on {svc.port}")
    pdb = render.get("PodDisruptionBudget", svc.name)
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    if pdb and not all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()):
        problems.append(f"{where}: PodDisruptionBudget does not select its pods")
    if svc.balanced:
        headless = render.get("Service", f"{svc.name}-headless")
        if (
            not headless
            or headless["spec"].get("clusterIP") != "None"
            or headless["spec"].get("selector") != {"app.kubernetes.io/name": svc.name}
            or not any(
                p.get("name") == "grpc" and p.get("port") == svc.port
                for p in headless["spec"].get("ports", [])
            )
        ):
            problems.append(
                f"{where}: no headless Service {svc.name}-headless selecting its pods on grpc {svc.port} "
                "(gateways balancing calls themselves resolve it)"
            )
    if svc.kind == "StatefulSet":
        headless = render.get("Service", workload["spec"].get("serviceName", ""))
        if not headless or headless["spec"].get("clusterIP") != "None":
            problems.append(f"{where}: serviceName must name a headless Service")

    pod = workload["spec"]["template"]["spec"]
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken must be false")
    if pod.get("serviceAccountName") != svc.name:
        problems.append(f"{where}: serviceAccountName must be {svc.name}")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot must be true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile must be RuntimeDefault")

    containers = pod.get("containers", [])
    if len(containers) != 1:
        return [*problems, f"{where}: expected one container"]
    c = containers[0]
    if c.get("command") != ["python", "-m", svc.module]:
        problems.append(f"{where}: command must be python -m {svc.module}")
    if not str(c.get("image", "")).startswith(("podium-", "ghcr.io/podium/podium")):
        problems.append(f"{where}: image {c.get('image')!r} is not the Podium image")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("grpc") != svc.port:
        problems.append(f"{where}: container port grpc must be {svc.port}")
    sc = c.get("securityContext", {})
    wants_ro = not render.name.startswith("overlays/dev")  # dev: Tilt's live_update writes the source
    if sc.get("readOnlyRootFilesystem") is not wants_ro:
        problems.append(f"{where}: readOnlyRootFilesystem must be {str(wants_ro).lower()}")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation must be false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities must drop ALL")
    if sc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: container runAsNonRoot must be true")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for what in ("cpu", "memory"):
            if what not in res.get(part, {}):
                problems.append(f"{where}: resources.{part}.{what} missing")
    mounts = {m.get("mountPath") for m in c.get("volumeMounts", [])}
    for path in ("/tmp", "/var/lib/podium"):
        if path not in mounts:
            problems.append(f"{where}: {path} must be a mounted volume (the root filesystem is read-only)")

    env = {e["name"]: e for e in c.get("env", [])}
    config_names = [ref["configMapRef"]["name"] for ref in c.get("envFrom", []) if "configMapRef" in ref]
    config = _config(render, *config_names)
    serves_tls = "PODIUM_GRPC_TLS_CERT_FILE" in config or "PODIUM_GRPC_TLS_CERT_FILE" in env
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        wants_service = probe != "livenessProbe"
        check = _check_tls_probe if serves_tls else _check_grpc_probe
        problems += [f"{where}: {probe} {p}" for p in check(c.get(probe, {}), svc, wants_service)]

    if config.get(svc.port_env) != str(svc.port):
        problems.append(f"{where}: {svc.port_env} must be {svc.port}")
    for name in CREDENTIALS:
        if name in config:
            problems.append(f"{where}: {name} is a credential: reference a Secret, not a ConfigMap")
        if name in env and "secretKeyRef" not in env[name].get("valueFrom", {}):
            problems.append(f"{where}: {name} is a credential: it must come from a Secret")
    if svc.uses_postgres and "secretKeyRef" not in env.get("DATABASE_URL", {}).get("valueFrom", {}):
        problems.append(f"{where}: DATABASE_URL must come from a Secret")
    if "secretKeyRef" not in env.get("PODIUM_JWT_SECRET", {}).get("valueFrom", {}):
        problems.append(f"{where}: PODIUM_JWT_SECRET must come from a Secret")
    uses_pg_label = labels.get("podium.dev/uses-postgres") == "true"
    if uses_pg_label != svc.uses_postgres:
        problems.append(f"{where}: label podium.dev/uses-postgres must be {str(svc.uses_postgres).lower()}")
    if (labels.get("podium.dev/uses-kafka") == "true") != svc.uses_kafka:
        problems.append(f"{where}: label podium.dev/uses-kafka must be {str(svc.uses_kafka).lower()}")

    grace = float(config.get("PODIUM_SHUTDOWN_GRACE_SECONDS", "10"))
    needed = _prestop_seconds(c) + grace + PRESTOP_MARGIN_SECONDS
    period = pod.get("terminationGracePeriodSeconds", 30)
    if not needed <= period <= needed + 10:
        problems.append(
            f"{where}: terminationGracePeriodSeconds {period} must cover preStop + "
            f"PODIUM_SHUTDOWN_GRACE_SECONDS + {PRESTOP_MARGIN_SECONDS} = {needed:g} (and not exceed it by 10 s)"
        )
    return problems


def _check_grpc_probe(probe: dict, svc: DeployedService, wants_service: bool) -> list[str]:
    grpc = probe.get("grpc")
    if grpc is None:
        return ["must be a native gRPC probe"]
    problems = [] if grpc.get("port") == svc.port else [f"must probe port {svc.port}"]
    if wants_service and grpc.get("service") != svc.health:
        problems.append(f"must ask the health service for {svc.health}")
    return problems


def _check_tls_probe(probe: dict, svc: DeployedService, wants_service: bool) -> list[str]:
    """A server that serves TLS is probed by `python -m libs.grpckit.probe` (native gRPC probes
    cannot speak TLS: docs/decisions/0001-health-probes-under-tls.md)."""
    command = probe.get("exec", {}).get("command", [])
    if command[:3] != TLS_PROBE:
        return [f"must be an exec probe ({' '.join(TLS_PROBE)}): native gRPC probes cannot speak TLS"]
    args = dict(zip(command[3::2], command[4::2], strict=False))
    problems = [] if args.get("--port") == str(svc.port) else [f"must probe --port {svc.port}"]
    if args.get("--service", "") != (svc.health if wants_service else ""):
        problems.append(
            f"must ask the health service for {svc.health if wants_service else 'the overall status'}"
        )
    if args.get("--server-name") != svc.name:
        problems.append(f"must check the certificate for --server-name {svc.name}")
    if probe.get("timeoutSeconds", 1) < 3:
        problems.append("timeoutSeconds must allow the probe's Python to start (3 s or more)")
    return problems


def check_workloads(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        for svc in SERVICES:
            problems += _check_workload(render, svc)
    return problems


def check_topics(renders: list[Render]) -> list[str]:
    """KafkaTopics match libs/events/topics.py (plus faust's changelogs) and the services' settings."""
    expected = expected_topics()
    problems = []
    for render in renders:
        topics = render.of_kind("KafkaTopic")
        if not topics:
            continue
        config = _config(render, "podium-common")
        partitions = int(config.get("PODIUM_TOPIC_PARTITIONS", "6"))
        replicas = int(config.get("PODIUM_TOPIC_REPLICATION_FACTOR", "1"))
        found = {}
        for t in topics:
            name = t["spec"].get("topicName", t["metadata"]["name"])
            found[name] = t
            where = f"{render.name}: KafkaTopic {name}"
            spec = expected.get(name)
            if spec is None:
                problems.append(f"{where}: not a Podium topic (libs/events/topics.py)")
                continue
            cfg = t["spec"].get("config", {})
            if cfg.get("cleanup.policy") != spec.cleanup_policy:
                problems.append(
                    f"{where}: cleanup.policy {cfg.get('cleanup.policy')} != {spec.cleanup_policy}"
                )
            if str(cfg.get("retention.ms")) != str(spec.retention_ms):
                problems.append(f"{where}: retention.ms {cfg.get('retention.ms')} != {spec.retention_ms}")
            if t["spec"].get("partitions") != partitions:
                problems.append(
                    f"{where}: partitions {t['spec'].get('partitions')} != PODIUM_TOPIC_PARTITIONS {partitions}"
                )
            if t["spec"].get("replicas") != replicas:
                problems.append(
                    f"{where}: replicas {t['spec'].get('replicas')} != PODIUM_TOPIC_REPLICATION_FACTOR {replicas}"
                )
            isr = int(cfg.get("min.insync.replicas", "1"))
            if isr > t["spec"].get("replicas", 1):
                problems.append(f"{where}: min.insync.replicas {isr} exceeds replicas")
        problems += [
            f"{render.name}: no KafkaTopic for {name}" for name in sorted(set(expected) - set(found))
        ]
        pools = render.of_kind("KafkaNodePool")
        brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"].get("roles", []))
        if pools and replicas > brokers:
            problems.append(f"{render.name}: replication factor {replicas} exceeds the {brokers} broker(s)")
    return problems


def check_relay_ring(renders: list[Render]) -> list[str]:
    """PODIUM_ROOM_MEDIA_RELAYS names each relay pod once, by its stable id and DNS name."""
    problems = []
    for render in renders:
        relay, room = render.get("StatefulSet", "media-relay"), render.get("ConfigMap", "room")
        if relay is None or room is None:
            continue
        where = f"{render.name}: PODIUM_ROOM_MEDIA_RELAYS"
        spec = room.get("data", {}).get("PODIUM_ROOM_MEDIA_RELAYS", "")
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        headless = relay["spec"].get("serviceName", "")
        port = next(p["containerPort"] for p in relay["spec"]["template"]["spec"]["containers"][0]["ports"])
        # Where the render has a namespace, the names gateways get are fully qualified in it.
        namespace = relay["metadata"].get("namespace")
        domain = f".{namespace}.svc.cluster.local" if namespace else ""
        wanted = [
            f"media-relay-{i}=media-relay-{i}.{headless}{domain}:{port}"
            for i in range(relay["spec"].get("replicas", 1))
        ]
        if entries != wanted:
            problems.append(f"{where} is {entries}, the StatefulSet's pods are {wanted}")
    return problems


def check_writer_lanes(renders: list[Render]) -> list[str]:
    """PODIUM_ROOM_LISTENER_SHARD_LANES gives every room replica a lane of its own (ADR 0018): at
    least as many as the replicas, the autoscaler's maximum where one scales the room. Fewer
    would put the extra replicas back to taking turns on the shards of a hot Space."""
    problems = []
    for render in renders:
        room, config = render.get("Deployment", "room"), render.get("ConfigMap", "room")
        if room is None or config is None:
            continue
        lanes = int(config.get("data", {}).get("PODIUM_ROOM_LISTENER_SHARD_LANES", "1"))
        scaler = next(
            (
                h
                for h in render.of_kind("HorizontalPodAutoscaler")
                if h["spec"]["scaleTargetRef"]["name"] == "room"
            ),
            None,
        )
        replicas = scaler["spec"]["maxReplicas"] if scaler else room["spec"].get("replicas", 1)
        if replicas > 1 and lanes < replicas:
            problems.append(
                f"{render.name}: PODIUM_ROOM_LISTENER_SHARD_LANES is {lanes} for up to {replicas} room "
                f"replicas; give each a lane (a power of two of at least {replicas})"
            )
    return problems


def check_no_committed_secrets(renders: list[Render]) -> list[str]:
    """Production renders no Secret: the JWT key and database credentials are referenced only."""
    return [
        f"{r.name}: commits Secret/{d['metadata']['name']}; reference it instead and create it out of band"
        for r in renders
        if r.name == "overlays/prod"
        for d in r.of_kind("Secret")
    ]


def _check_metrics_ingress(render: Render, policies: list[dict]) -> list[str]:
    """Under the default deny, Prometheus (from its own namespace) reaches every pod's metrics port."""
    port = int(_config(render, "podium-common").get("PODIUM_METRICS_PORT", "-1"))
    for p in policies:
        if p["spec"].get("podSelector", {}).get("matchLabels") != {"app.kubernetes.io/part-of": "podium"}:
            continue
        for rule in p["spec"].get("ingress", []):
            if [q.get("port") for q in rule.get("ports", [])] == [port] and all(
                "namespaceSelector" in peer and "podSelector" in peer for peer in rule.get("from", [])
            ):
                return []
    return [
        f"{render.name}: no NetworkPolicy admits Prometheus (a namespace and pod selector) "
        f"to every Podium pod on the metrics port {port} and nothing else"
    ]


def check_network_policies(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        # coturn's own policy comes with it (components/turn) and is checked there (deploy/check/turn.py).
        policies = [
            p
            for p in render.of_kind("NetworkPolicy")
            if p["spec"].get("podSelector", {}).get("matchLabels") != {"app.kubernetes.io/name": "coturn"}
        ]
        if not policies:
            continue
        deny = [
            p
            for p in policies
            if p["spec"].get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/part-of": "podium"}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        if not deny:
            problems.append(f"{render.name}: no default-deny NetworkPolicy for Podium's pods")
        problems += _check_metrics_ingress(render, policies)
        for svc in SERVICES:
            selecting = [
                p
                for p in policies
                if p["spec"].get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": svc.name}
            ]
            rules = [r for p in selecting for r in p["spec"].get("ingress", [])]
            if svc.edge:
                # Browsers come from anywhere, to its HTTP and media ports; its gRPC port is health only.
                if any(p.get("port") == svc.port for r in rules for p in r.get("ports", [])):
                    problems.append(
                        f"{render.name}: {svc.name} is an edge, but a NetworkPolicy opens its gRPC port"
                    )
                if not rules:
                    problems.append(f"{render.name}: nothing lets browsers reach {svc.name}")
                continue
            if not svc.public and rules:
                problems.append(f"{render.name}: {svc.name} is not public but a NetworkPolicy opens it")
            if svc.public and not rules:
                problems.append(f"{render.name}: nothing lets gateways reach {svc.name}")
            for rule in rules:
                peers = rule.get("from", [])
                ports = [p.get("port") for p in rule.get("ports", [])]
                if ports != [svc.port]:
                    problems.append(
                        f"{render.name}: {svc.name} ingress opens ports {ports}, want [{svc.port}]"
                    )
                allowed = [{"podium.dev/gateway": "true"}]
                if svc.peers:
                    allowed.append({"app.kubernetes.io/name": svc.name})
                for peer in peers:
                    if peer.get("podSelector", {}).get("matchLabels") not in allowed:
                        problems.append(
                            f"{render.name}: {svc.name} ingress admits {peer}, not only gateways"
                            + (" and its own replicas" if svc.peers else "")
                        )
                    if "namespaceSelector" in peer and peer["podSelector"]["matchLabels"] != allowed[0]:
                        problems.append(
                            f"{render.name}: {svc.name} admits its replicas from other namespaces"
                        )
                if not peers:
                    problems.append(f"{render.name}: {svc.name} ingress admits everyone")
    return problems


def check_catalogue(_: list[Render] | None = None) -> list[str]:
    """The services deployed are exactly those the dev stack runs (libs/devstack/catalogue.py)."""
    deployed = {s.name for s in SERVICES}
    running = {s.name for s in devstack.SERVICES}
    problems = [
        f"{name}: in libs/devstack/catalogue.py but not deployed (deploy/check/catalogue.py)"
        for name in sorted(running - deployed)
    ]
    problems += [
        f"{name}: deployed but not in libs/devstack/catalogue.py" for name in sorted(deployed - running)
    ]
    return problems
