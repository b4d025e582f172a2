"""gRPC over TLS from cert-manager: each service's certificate is mounted where its settings
point and names every address the service is dialled at.

Where a render has Certificates (components/grpc-tls), every service must serve TLS with
client certificates required (mTLS) and trust the same CA when it dials: all four
PODIUM_GRPC_TLS_* files in one mounted Secret, the one its Certificate writes. The
certificate allows server and client use, and covers the Service's name (and its
namespaced forms where the render has a namespace); for the media relay, every address of
the relay ring the room hands gateways; for presence, the address replicas advertise to
each other.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from deploy.check.catalogue import SERVICES, DeployedService
from deploy.check.render import Render
from deploy.check.settings import pod_environment
from libs.routing.hash_ring import parse_nodes

TLS_FILES = (
    "PODIUM_GRPC_TLS_CERT_FILE",
    "PODIUM_GRPC_TLS_KEY_FILE",
    "PODIUM_GRPC_TLS_CLIENT_CA_FILE",
    "PODIUM_GRPC_TLS_CA_FILE",
)


def covers(dns_names: list[str], host: str) -> bool:
    """Whether a certificate for `dns_names` is valid for `host` (RFC 6125: a wildcard stands for
    exactly one leftmost label, and needs at least two labels after it)."""
    host = host.lower()
    for name in dns_names:
        name = name.lower()
        if name == host:
            return True
        if (
            name.startswith("*.")
            and name.count(".") >= 2
            and "." in host
            and host.split(".", 1)[1] == name[2:]
        ):
            return True
    return False


def _mounted_secret(workload: dict, path: str) -> str | None:
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in pod["containers"][0].get("volumeMounts", []):
        if PurePosixPath(path).parent == PurePosixPath(mount["mountPath"]):
            return volumes.get(mount["name"], {}).get("secret", {}).get("secretName")
    return None


def _addresses(render: Render, svc: DeployedService, env: dict[str, str], namespace: str) -> list[str]:
    """Every host name the service is dialled at."""
    services = [svc.name] + ([f"{svc.name}-headless"] if svc.balanced else [])
    names = list(services)
    if namespace:
        names += [f"{s}.{namespace}.svc{domain}" for s in services for domain in ("", ".cluster.local")]
    if svc.name == "media-relay":
        ring = (render.get("ConfigMap", "room") or {}).get("data", {}).get("PODIUM_ROOM_MEDIA_RELAYS", "")
        if ring:
            names += [node.address.rpartition(":")[0] for node in parse_nodes(ring)]
    if svc.peers:
        # pod_environment stands `<name>-0` in for the pod name: any one label.
        names.append(env.get("PODIUM_PRESENCE_ADVERTISED_HOST", ""))
    return names


def _check_service(render: Render, svc: DeployedService, certificates: dict[str, dict]) -> list[str]:
    where = f"{render.name}: {svc.name}"
    workload = render.get(svc.kind, svc.name)
    if workload is None:
        return []
    env = pod_environment(render, svc)
    missing = [name for name in TLS_FILES if not env.get(name)]
    if missing:
        return [
            f"{where}: {', '.join(missing)} unset: every service serves mTLS where Certificates are deployed"
        ]
    secrets = {_mounted_secret(workload, env[name]) for name in TLS_FILES}
    if len(secrets) != 1 or None in secrets:
        return [f"{where}: {', '.join(TLS_FILES)} must all be files of one mounted Secret"]
    secret = secrets.pop()
    certificate = certificates.get(secret)
    if certificate is None:
        return [f"{where}: no Certificate writes the Secret {secret} it mounts"]
    problems = []
    spec = certificate["spec"]
    for usage in ("server auth", "client auth"):
        if usage not in spec.get("usages", []):
            problems.append(f"{where}: Certificate {certificate['metadata']['name']} must allow {usage}")
    namespace = workload["metadata"].get("namespace", "")
    for host in _addresses(render, svc, env, namespace):
        if not covers(spec.get("dnsNames", []), host):
            problems.append(
                f"{where}: Certificate {certificate['metadata']['name']} does not cover {host}, "
                "an address it is dialled at"
            )
    return problems


def check_grpc_tls(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        certificates = {c["spec"].get("secretName", ""): c for c in render.of_kind("Certificate")}
        if not certificates:
            continue
        for svc in SERVICES:
            problems += _check_service(render, svc, certificates)
    return problems
