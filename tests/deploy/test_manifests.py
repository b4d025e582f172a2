"""The manifests pass every check as committed, and each check fails on a manifest broken on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.check import manifests
from deploy.check.render import ALONE, COMPONENTS, REQUIRES, Render, check_rendered, combinations, kustomize
from deploy.check.schemas import check_schemas
from tests.deploy.conftest import edit, render


def test_every_combination_is_rendered(renders):
    # Every subset of the components, less those missing a component another needs.
    needy = {c for c in COMPONENTS if REQUIRES.get(c)}
    assert needy == {"kafka-tls"}
    assert len(combinations()) == 2 ** len(COMPONENTS) - 2 ** (len(COMPONENTS) - 2) + len(ALONE)
    assert not [c for c in combinations() if "kafka-tls" in c and "strimzi" not in c]
    assert {r.name for r in renders} >= {
        "base",
        "base+" + "+".join(COMPONENTS),
        *("base+" + c for c in ALONE),
        "overlays/dev",
        "overlays/prod",
    }
    assert check_rendered(renders) == []


@pytest.mark.parametrize(
    "check",
    [
        check_schemas,
        manifests.check_workloads,
        manifests.check_topics,
        manifests.check_relay_ring,
        manifests.check_writer_lanes,
        manifests.check_no_committed_secrets,
        manifests.check_network_policies,
    ],
)
def test_the_committed_manifests_pass(renders, check):
    assert check(renders) == []


def test_a_broken_kustomization_fails_the_render(repo: Path):
    edit(repo / "deploy/k8s/base/kustomization.yaml", "  - room.yaml\n", "  - rooms.yaml\n")
    docs, error = kustomize(repo / "deploy/k8s/base")
    assert check_rendered([Render("base", docs, error)])


def test_a_writable_root_filesystem_fails(repo: Path):
    edit(repo / "deploy/k8s/base/room.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    problems = manifests.check_workloads([render(repo, "overlays/prod")])
    assert any("room: readOnlyRootFilesystem must be true" in p for p in problems), problems


def test_readiness_on_the_wrong_health_service_fails(repo: Path):
    path = repo / "deploy/k8s/base/moderation.yaml"
    text = path.read_text()
    path.write_text(text.replace("service: podium.moderation.v1.ModerationService", 'service: ""'))
    problems = manifests.check_workloads([render(repo, "overlays/dev")])  # prod probes over TLS
    assert any("readinessProbe must ask the health service" in p for p in problems), problems


def test_a_grace_period_shorter_than_the_drain_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/presence.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 10",
    )
    problems = manifests.check_workloads([render(repo, "overlays/prod")])
    assert any("presence: terminationGracePeriodSeconds 10" in p for p in problems), problems


def test_a_credential_in_a_configmap_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/common.yaml",
        "  PODIUM_LOG_LEVEL: INFO\n",
        "  PODIUM_LOG_LEVEL: INFO\n  PODIUM_JWT_SECRET: hunter2\n",
    )
    problems = manifests.check_workloads([render(repo, "overlays/prod")])
    assert any("PODIUM_JWT_SECRET is a credential" in p for p in problems), problems


def test_a_topic_drifting_from_the_code_fails(repo: Path):
    topics = repo / "deploy/k8s/components/strimzi/topics.yaml"
    # The heartbeat topic keeps one hour in libs/events/topics.py.
    edit(topics, 'retention.ms: "3600000"', 'retention.ms: "-1"')
    problems = manifests.check_topics([render(repo, "overlays/prod")])
    assert any("podium.presence.heartbeats.v1: retention.ms -1 != 3600000" in p for p in problems), problems


def test_a_missing_topic_fails(repo: Path):
    edit(
        repo / "deploy/k8s/components/strimzi/topics.yaml",
        "topicName: podium.deadletter.v1",
        "topicName: podium.deadletters.v1",
    )
    problems = manifests.check_topics([render(repo, "overlays/dev")])
    assert any("no KafkaTopic for podium.deadletter.v1" in p for p in problems), problems
    assert any("podium.deadletters.v1: not a Podium topic" in p for p in problems), problems


def test_partitions_disagreeing_with_the_setting_fail(repo: Path):
    edit(
        repo / "deploy/k8s/base/common.yaml", 'PODIUM_TOPIC_PARTITIONS: "6"', 'PODIUM_TOPIC_PARTITIONS: "12"'
    )
    problems = manifests.check_topics([render(repo, "overlays/dev")])
    assert any("partitions 6 != PODIUM_TOPIC_PARTITIONS 12" in p for p in problems), problems


def test_a_relay_ring_out_of_step_with_the_statefulset_fails(repo: Path):
    edit(
        repo / "deploy/k8s/overlays/prod/kustomization.yaml",
        "  - name: media-relay\n    count: 3",
        "  - name: media-relay\n    count: 4",
    )
    problems = manifests.check_relay_ring([render(repo, "overlays/prod")])
    assert (
        problems
        and "media-relay-3=media-relay-3.media-relay-headless.podium.svc.cluster.local:50054" in problems[0]
    )


def test_fewer_writer_lanes_than_the_autoscaler_may_run_room_replicas_fails(repo: Path):
    edit(repo / "deploy/k8s/overlays/prod/hpa.yaml", "  maxReplicas: 12", "  maxReplicas: 20")
    problems = manifests.check_writer_lanes([render(repo, "overlays/prod")])
    assert problems == [
        "overlays/prod: PODIUM_ROOM_LISTENER_SHARD_LANES is 16 for up to 20 room replicas; "
        "give each a lane (a power of two of at least 20)"
    ]


def test_a_secret_committed_to_prod_fails(repo: Path):
    path = repo / "deploy/k8s/overlays/prod/kustomization.yaml"
    path.write_text(
        path.read_text() + "secretGenerator:\n  - name: podium-jwt\n    literals:\n      - secret=oops\n"
    )
    problems = manifests.check_no_committed_secrets([render(repo, "overlays/prod")])
    assert problems and "commits Secret/podium-jwt" in problems[0]


def test_a_public_port_open_to_everyone_fails(repo: Path):
    path = repo / "deploy/k8s/components/network-policies/policies.yaml"
    text = path.read_text()
    room = text.index("name: room-from-gateways")
    path.write_text(text[:room] + text[room:].replace('podium.dev/gateway: "true"', "app: anything", 1))
    problems = manifests.check_network_policies([render(repo, "overlays/prod")])
    assert any("room ingress admits" in p for p in problems), problems


def test_a_misspelt_custom_resource_field_fails_its_schema(repo: Path):
    edit(repo / "deploy/k8s/components/strimzi/topics.yaml", "  partitions: 6\n", "  partition: 6\n")
    problems = check_schemas([render(repo, "overlays/dev")])
    assert any("KafkaTopic/" in p and "'partition' was unexpected" in p for p in problems), problems


def test_an_invalid_builtin_field_fails_kubernetes_validate(repo: Path):
    edit(
        repo / "deploy/k8s/base/replay.yaml",
        "      serviceAccountName: replay\n",
        "      serviceAccountName: replay\n      serviceAcountName: typo\n",
    )
    problems = check_schemas([render(repo, "overlays/prod")])
    assert any("Deployment/replay" in p and "serviceAcountName" in p for p in problems), problems


def test_a_custom_resource_without_a_schema_fails(repo: Path):
    path = repo / "deploy/k8s/components/strimzi/kafka.yaml"
    path.write_text(
        path.read_text()
        + "---\napiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaConnect\nmetadata:\n  name: x\nspec: {}\n"
    )
    problems = check_schemas([render(repo, "overlays/dev")])
    assert any("no schema for kafka.strimzi.io/v1beta2/KafkaConnect" in p for p in problems), problems


def test_the_deployment_covers_the_dev_stack():
    assert manifests.check_catalogue() == []


def test_a_service_the_dev_stack_runs_but_nobody_deploys_fails(monkeypatch):
    from libs.devstack import catalogue as devstack

    extra = devstack.ServiceSpec(
        "billing", "services.billing", "PODIUM_BILLING_PORT", 50099, "podium.billing.v1.BillingService"
    )
    monkeypatch.setattr(devstack, "SERVICES", (*devstack.SERVICES, extra))
    problems = manifests.check_catalogue()
    assert problems and "billing: in libs/devstack/catalogue.py but not deployed" in problems[0]


def test_a_gateway_facing_service_without_its_headless_twin_fails(repo: Path):
    edit(
        repo / "deploy/k8s/base/moderation.yaml", "  name: moderation-headless\n", "  name: moderation-pods\n"
    )
    problems = manifests.check_workloads([render(repo, "overlays/prod")])
    assert any("no headless Service moderation-headless" in p for p in problems), problems
