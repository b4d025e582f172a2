"""The prod overlay's transport security: mTLS from cert-manager, Kafka over TLS with one user per
service whose ACLs follow the code, and settings that pass the production check."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

from deploy.check import manifests
from deploy.check.catalogue import SERVICES
from deploy.check.kafka import check_kafka_access
from deploy.check.settings import check_settings
from deploy.check.tls import check_grpc_tls, covers
from libs.events import topics
from libs.events.topics import DEAD_LETTER, TopicSpec
from tests.deploy.conftest import edit, render

PROD = "overlays/prod"


@pytest.mark.parametrize("check", [check_grpc_tls, check_kafka_access])
def test_the_committed_manifests_pass(renders, check):
    assert check(renders) == []


def test_the_prod_overlay_is_checked_in_production_mode(renders):
    prod = next(r for r in renders if r.name == PROD)
    common = prod.get("ConfigMap", "podium-common")["data"]
    assert common["PODIUM_ENV"] == "production"
    assert check_settings([prod]) == []


# ---- production mode, on the rendered settings


def test_prod_without_production_mode_fails(repo: Path):
    edit(
        repo / f"deploy/k8s/{PROD}/kustomization.yaml",
        "        value: production\n",
        "        value: development\n",
    )
    problems = check_settings([render(repo, PROD)])
    assert any("room: PODIUM_ENV must be production" in p for p in problems), problems


def test_prod_with_plaintext_kafka_fails_the_production_check(repo: Path):
    edit(repo / f"deploy/k8s/{PROD}/kustomization.yaml", "  - ../../components/kafka-tls\n", "")
    problems = check_settings([render(repo, PROD)])
    for svc in SERVICES:
        if not svc.uses_kafka:  # the gateway: no Kafka, so its Kafka settings are nobody's concern
            assert not any(f"{svc.name}: production mode: PODIUM_KAFKA" in p for p in problems), problems
            continue
        assert any(
            f"{svc.name}: production mode: PODIUM_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in p for p in problems
        ), problems


def test_prod_without_certificates_fails_the_production_check(repo: Path):
    edit(repo / f"deploy/k8s/{PROD}/kustomization.yaml", "  - ../../components/grpc-tls\n", "")
    problems = check_settings([render(repo, PROD)])
    assert any("replay: production mode: PODIUM_GRPC_TLS_CERT_FILE is unset" in p for p in problems), problems


def test_prod_with_the_placeholder_invite_url_fails_the_production_check(repo: Path):
    edit(
        repo / f"deploy/k8s/{PROD}/kustomization.yaml",
        "              name: podium-site\n              key: invite-link-base-url\n",
        "              name: room\n              key: PODIUM_ROOM_INVITE_LINK_BASE_URL\n",
    )
    edit(
        repo / "deploy/k8s/base/room.yaml",
        "  OTEL_SERVICE_NAME: room\n",
        "  OTEL_SERVICE_NAME: room\n  PODIUM_ROOM_INVITE_LINK_BASE_URL: https://podium.example/i/\n",
    )
    problems = check_settings([render(repo, PROD)])
    assert any(
        "room: production mode: PODIUM_ROOM_INVITE_LINK_BASE_URL is https://podium.example/i/, a placeholder"
        in p
        for p in problems
    ), problems


def test_a_value_from_a_configmap_nobody_creates_fails(repo: Path):
    edit(repo / f"deploy/k8s/{PROD}/kustomization.yaml", "name: podium-site\n", "name: podium-sight\n")
    problems = check_settings([render(repo, PROD)])
    assert any("refers to ConfigMap podium-sight" in p for p in problems), problems


# ---- gRPC over TLS


def test_a_native_grpc_probe_on_a_tls_server_fails(repo: Path):
    path = repo / "deploy/k8s/components/grpc-tls/replay.yaml"
    text = path.read_text()
    # Drop the patch that replaces the liveness probe: the base's native gRPC probe stays.
    path.write_text(
        text[: text.index("- op: replace\n  path: /spec/template/spec/containers/0/livenessProbe")]
    )
    problems = manifests.check_workloads([render(repo, PROD)])
    assert any("replay: livenessProbe must be an exec probe" in p for p in problems), problems


def test_a_probe_checking_the_wrong_name_fails(repo: Path):
    edit(repo / "deploy/k8s/components/grpc-tls/room.yaml", "--server-name, room]", "--server-name, rooms]")
    problems = manifests.check_workloads([render(repo, PROD)])
    assert any("room: startupProbe must check the certificate for --server-name room" in p for p in problems)


def test_a_relay_the_certificate_does_not_name_fails(repo: Path):
    # Gateways are sent to each relay's fully qualified name (the ring), which the wildcard covers.
    edit(
        repo / "deploy/k8s/components/grpc-tls/certificates.yaml",
        '    - "*.media-relay-headless.podium.svc.cluster.local"\n',
        "",
    )
    problems = check_grpc_tls([render(repo, PROD)])
    assert problems == [
        "overlays/prod: media-relay: Certificate media-relay-grpc does not cover "
        f"media-relay-{i}.media-relay-headless.podium.svc.cluster.local, an address it is dialled at"
        for i in range(3)
    ]


def test_certificates_for_another_namespace_fail(repo: Path):
    edit(repo / f"deploy/k8s/{PROD}/kustomization.yaml", "namespace: podium\n", "namespace: spaces\n")
    edit(repo / f"deploy/k8s/{PROD}/namespace.yaml", "name: podium\n", "name: spaces\n")
    problems = check_grpc_tls([render(repo, PROD)])
    assert any("room-grpc does not cover room.spaces.svc" in p for p in problems), problems


def test_a_certificate_that_cannot_be_a_client_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/grpc-tls/certificates.yaml",
        "  usages: [digital signature, server auth, client auth]\n  dnsNames:\n    - moderation\n",
        "  usages: [digital signature, server auth]\n  dnsNames:\n    - moderation\n",
    )
    problems = check_grpc_tls([render(repo, PROD)])
    assert problems == ["overlays/prod: moderation: Certificate moderation-grpc must allow client auth"]


def test_wildcards_cover_one_label_and_need_two_after_them():
    assert covers(
        ["*.presence-peers.podium.svc.cluster.local"], "p-1.presence-peers.podium.svc.cluster.local"
    )
    assert not covers(
        ["*.presence-peers.podium.svc.cluster.local"], "a.b.presence-peers.podium.svc.cluster.local"
    )
    assert not covers(["*.media-relay-headless"], "media-relay-0.media-relay-headless")
    assert covers(["room"], "ROOM")


# ---- Kafka: users and ACLs


def test_an_acl_the_code_does_not_need_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/kafka-tls/users.yaml",
        "        name: podium.presence.events.v1\n        patternType: literal\n      operations: [Read, Describe]",
        "        name: podium.presence.events.v1\n        patternType: literal\n      operations: [Read, Write, Describe]",
    )
    problems = check_kafka_access([render(repo, PROD)])
    assert problems == [
        "overlays/prod: room: KafkaUser podium-room grants ('topic', 'podium.presence.events.v1', 'literal', "
        "'Write'), which its code does not need"
    ]


def test_a_missing_acl_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/kafka-tls/users.yaml",
        "        name: podium-analytics\n",
        "        name: analytics\n",
    )
    problems = check_kafka_access([render(repo, PROD)])
    assert any(
        "KafkaUser podium-analytics lacks ('group', 'podium-analytics', 'literal', 'Read')" in p
        for p in problems
    )


def test_a_plaintext_listener_beside_the_tls_one_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/kafka-tls/kustomization.yaml",
        "          - name: tls\n",
        "          - name: plain\n            port: 9092\n            type: internal\n            tls: false\n"
        "          - name: tls\n",
    )
    problems = check_kafka_access([render(repo, PROD)])
    assert any("listener plain must be TLS with authentication" in p for p in problems), problems


def test_a_service_logging_in_as_another_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/kafka-tls/replay.yaml",
        "    value: podium-replay\n",
        "    value: podium-room\n",
    )
    problems = check_kafka_access([render(repo, PROD)])
    assert problems == ["overlays/prod: replay: PODIUM_KAFKA_SASL_USERNAME must be podium-replay"]


def test_the_kafka_password_in_a_configmap_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/common.yaml",
        "  PODIUM_LOG_LEVEL: INFO\n",
        "  PODIUM_LOG_LEVEL: INFO\n  PODIUM_KAFKA_SASL_PASSWORD: hunter2\n",
    )
    problems = manifests.check_workloads([render(repo, PROD)])
    assert any("PODIUM_KAFKA_SASL_PASSWORD is a credential" in p for p in problems), problems


def _topics_in_code(package: str) -> set[str]:
    """The Podium topics a service's modules name (module globals that are TopicSpecs)."""
    found = set()
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if info.name.endswith(".__main__"):  # it would start the service
            continue
        module = importlib.import_module(info.name)
        found |= {v.name for v in vars(module).values() if isinstance(v, TopicSpec)}
    return found


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_each_service_is_granted_exactly_the_topics_its_code_names(svc):
    """The ACLs follow the code: a topic a service's modules name is granted, and a granted topic
    is named by its code (the dead-letter topic by the shell and projection runner every service
    with views uses)."""
    granted = {t.name for t in (*svc.kafka.writes, *svc.kafka.reads)}
    named = _topics_in_code(svc.module)
    assert named - granted == set()
    assert granted - named <= {DEAD_LETTER.name}


@pytest.mark.parametrize("svc", [s for s in SERVICES if s.kafka.faust_app], ids=lambda s: s.name)
def test_a_faust_app_id_is_the_one_its_code_uses(svc):
    package = Path(importlib.import_module(svc.module).__path__[0])
    # Literally, or through its constant in the topic catalogue (which names its changelogs too).
    constants = [
        name for name, value in vars(topics).items() if name.endswith("_APP") and value == svc.kafka.faust_app
    ]
    spelled = [f'"{svc.kafka.faust_app}"', *constants]
    assert any(word in p.read_text() for p in package.rglob("*.py") for word in spelled)
